#![no_main]
//! Varint: arbitrary bytes never panic and no frame exceeds the limit; any payload
//! survives encode then decode.

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use socklab_framing::VarintCodec;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let Some(input) = socklab_fuzz::split(data) else { return };
    let max = usize::from(input.config) * 16;
    socklab_fuzz::drive(VarintCodec::new().max_frame_len(max), &input, |f| f.len(), max, 10);

    let mut codec = VarintCodec::new();
    let mut wire = BytesMut::new();
    codec.encode(input.stream, &mut wire).expect("fits the default limit");
    let frame = codec.decode(&mut wire).expect("own encoding decodes").expect("complete frame");
    assert_eq!(&frame[..], input.stream);
});
