#![no_main]
//! Delimited: arbitrary bytes with a small limit (the config byte), and the delimiter
//! chosen so that it occurs in fuzzer input.

use libfuzzer_sys::fuzz_target;
use socklab_framing::DelimitedCodec;

fuzz_target!(|data: &[u8]| {
    let Some(input) = socklab_fuzz::split(data) else { return };
    let max = usize::from(input.config);
    let codec = DelimitedCodec::with_delimiter(b'\n').max_frame_len(max);
    socklab_fuzz::drive(codec, &input, |f| f.len(), max, 1);
});
