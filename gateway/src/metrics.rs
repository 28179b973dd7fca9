//! Prometheus metrics under etcd's names.

use std::sync::Arc;

use cairn_core::Node;

pub struct Metrics {
    #[allow(dead_code)]
    node: Arc<Node>,
}

impl Metrics {
    pub fn new(node: Arc<Node>) -> Arc<Metrics> {
        Arc::new(Metrics { node })
    }
}
