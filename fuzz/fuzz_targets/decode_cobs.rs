#![no_main]
//! COBS: arbitrary bytes never panic; and any payload survives encode then decode.

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use socklab_framing::CobsCodec;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let Some(input) = socklab_fuzz::split(data) else { return };
    let max = usize::from(input.config) * 4;
    socklab_fuzz::drive(CobsCodec::new().max_frame_len(max), &input, |f| f.len(), max, max / 254 + 2);

    let mut codec = CobsCodec::new();
    let mut wire = BytesMut::new();
    codec.encode(input.stream, &mut wire).expect("fits the default limit");
    assert!(!wire[..wire.len() - 1].contains(&0), "stuffed frame contains a zero");
    let frame = codec.decode(&mut wire).expect("own encoding decodes").expect("complete frame");
    assert_eq!(&frame[..], input.stream);
});
