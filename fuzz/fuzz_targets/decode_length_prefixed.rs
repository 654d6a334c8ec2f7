#![no_main]
//! Length prefix: the config byte picks the field (width, byte order, signedness) and
//! the limit; arbitrary bytes never panic and no frame exceeds the limit; any payload
//! survives encode then decode.

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use socklab_framing::{Endian, HeaderWidth, LengthPrefixedCodec};
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let Some(input) = socklab_fuzz::split(data) else { return };
    let width = [HeaderWidth::U8, HeaderWidth::U16, HeaderWidth::U32, HeaderWidth::U64]
        [usize::from(input.config & 3)];
    let endian = if input.config & 4 == 0 { Endian::Big } else { Endian::Little };
    let max = usize::from(input.config >> 3) * 16;
    let codec = LengthPrefixedCodec::new(width, endian).signed(input.config & 8 != 0).max_frame_len(max);
    socklab_fuzz::drive(codec.clone(), &input, |f| f.len(), max, width.bytes());

    let mut codec = codec.max_frame_len(usize::MAX);
    let mut wire = BytesMut::new();
    if codec.encode(input.stream, &mut wire).is_ok() {
        let frame = codec.decode(&mut wire).expect("own encoding decodes").expect("complete frame");
        assert_eq!(&frame[..], input.stream);
    }
});
