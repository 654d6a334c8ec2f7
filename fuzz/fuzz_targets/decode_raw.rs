#![no_main]
//! Raw: every read becomes one frame; nothing may be lost or invented.

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use socklab_framing::RawCodec;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some(input) = socklab_fuzz::split(data) else { return };
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in input.stream.chunks(input.read_size) {
        buf.extend_from_slice(chunk);
        while let Ok(Some(frame)) = RawCodec.decode(&mut buf) {
            assert!(frame.len() <= input.read_size);
            out.extend_from_slice(&frame);
        }
    }
    assert_eq!(out, input.stream);
});
