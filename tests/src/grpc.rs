//! Reading the gRPC status out of an `etcd_client::Error`.

use std::fmt::Debug;

use tonic::Code;

/// The gRPC status the server answered with, if the error is one.
pub fn grpc_status(error: &etcd_client::Error) -> Option<&tonic::Status> {
    match error {
        etcd_client::Error::GRpcStatus(status) => Some(status),
        _ => None,
    }
}

/// The server's message (`etcdserver: ...`), or the whole error when it is not a gRPC status.
pub fn grpc_message(error: &etcd_client::Error) -> String {
    grpc_status(error).map_or_else(|| error.to_string(), |status| status.message().to_owned())
}

/// The gRPC code, or `None` when the error did not come from the server.
pub fn grpc_code(error: &etcd_client::Error) -> Option<Code> {
    grpc_status(error).map(tonic::Status::code)
}

/// Asserts that `result` failed with exactly this gRPC code and message.
#[track_caller]
pub fn assert_grpc_error<T: Debug>(
    result: Result<T, etcd_client::Error>,
    code: Code,
    message: &str,
) {
    match result {
        Ok(value) => panic!("expected {code:?} `{message}`, got success: {value:?}"),
        Err(error) => {
            assert_eq!(
                (grpc_code(&error), grpc_message(&error).as_str()),
                (Some(code), message),
                "wrong error; full error: {error}"
            );
        }
    }
}
