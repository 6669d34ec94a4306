//! Relay frames in both directions (SPEC.md section 10): what the relay reads from a client and
//! what chatd reads from a relay.

use protocol::codec::{Decode, Encode};
use protocol::frames::{ClientFrame, ServerFrame};

/// A frame from a client, as the relay decodes it. A frame that decodes and passes its limits
/// must encode back to exactly the input bytes (the encoding is canonical: the conventions at
/// the top of SPEC.md).
pub fn client_frame(data: &[u8]) {
    let Ok(frame) = ClientFrame::from_bytes(data) else {
        return;
    };
    let _ = (frame.name(), frame.type_byte(), frame.request_id());
    if frame.check_limits().is_ok() {
        assert_eq!(
            frame.to_bytes(),
            data,
            "a client frame does not re-encode to its input: {frame:?}"
        );
    }
}

/// A frame from the relay, as chatd decodes it; the same invariant as [`client_frame`].
pub fn server_frame(data: &[u8]) {
    let Ok(frame) = ServerFrame::from_bytes(data) else {
        return;
    };
    let _ = (frame.name(), frame.type_byte(), frame.request_id());
    if frame.check_limits().is_ok() {
        assert_eq!(
            frame.to_bytes(),
            data,
            "a server frame does not re-encode to its input: {frame:?}"
        );
    }
}
