//! The gRPC codec of every Cairn service and client: tonic-prost's, with a cheaper encoder.
//!
//! prost writes a varint a byte at a time through `BufMut::put_u8`. tonic hands it a buffer over
//! `BytesMut`, whose `put_u8` is a call to `extend_from_slice` with a one-byte `memcpy`: a
//! watch event (a header with two 64-bit IDs, a KeyValue with four revisions) paid some forty of
//! them. Encoding into a `Vec` first, whose `put_u8` inlines to a store, then copying the message
//! into tonic's buffer once costs a fraction of that. Decoding is tonic-prost's.

use std::marker::PhantomData;

use prost::bytes::BufMut;
use prost::Message;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::Status;
use tonic_prost::ProstDecoder;

/// What the generated servers and clients use (`codec_path` in build.rs).
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProtoEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProtoEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::default())
    }
}

/// Encodes a message into a `Vec`, then into tonic's buffer in one copy.
#[derive(Debug, Clone)]
pub struct ProtoEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for ProtoEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item.encode_to_vec());
        Ok(())
    }
}
