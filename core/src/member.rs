//! Member and cluster identity, derived as etcd derives them, so that IDs are stable across
//! restarts and the same configuration gives the same IDs as etcd.

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// etcd's member ID: SHA-1 of the sorted peer URLs and the cluster token, first 8 bytes.
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut hasher = Sha1::new();
    hasher.update(urls.concat().as_bytes());
    hasher.update(cluster_token.as_bytes());
    first_u64(&hasher.finalize())
}

/// etcd's ID for a member added to a running cluster: as [`member_id`], with the time of
/// the addition (seconds since the epoch, in decimal) hashed in after the token.
pub fn added_member_id(peer_urls: &[String], cluster_token: &str, unix_secs: u64) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut hasher = Sha1::new();
    hasher.update(urls.concat().as_bytes());
    hasher.update(cluster_token.as_bytes());
    hasher.update(unix_secs.to_string().as_bytes());
    first_u64(&hasher.finalize())
}

/// etcd's cluster ID: SHA-1 of the sorted member IDs, first 8 bytes.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut hasher = Sha1::new();
    for id in ids {
        hasher.update(id.to_be_bytes());
    }
    first_u64(&hasher.finalize())
}

fn first_u64(hash: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(b)
}

/// What a member records about itself at bootstrap and reads back on every restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub name: String,
    pub member_id: u64,
    pub cluster_id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_sorted_urls_and_token() {
        let a = member_id(&["http://a:2380".into(), "http://b:2380".into()], "etcd-cluster");
        let b = member_id(&["http://b:2380".into(), "http://a:2380".into()], "etcd-cluster");
        assert_eq!(a, b);
        assert_ne!(a, member_id(&["http://a:2380".into(), "http://b:2380".into()], "other"));
        assert_eq!(cluster_id(&[3, 1, 2]), cluster_id(&[1, 2, 3]));
    }

    #[test]
    fn default_member_matches_etcd() {
        // etcd 3.5 with no flags reports member 8e9e05c52164694d in cluster cdf818194e3a8c32.
        let id = member_id(&["http://localhost:2380".into()], "etcd-cluster");
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
    }
}
