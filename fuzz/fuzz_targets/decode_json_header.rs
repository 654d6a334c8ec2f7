#![no_main]
//! JSON header: arbitrary bytes (and arbitrary text framed as a header) never panic and
//! no body exceeds the limit.

use libfuzzer_sys::fuzz_target;
use socklab_framing::JsonHeaderCodec;

fuzz_target!(|data: &[u8]| {
    let Some(input) = socklab_fuzz::split(data) else { return };
    let max = usize::from(input.config) * 4;
    let codec = || JsonHeaderCodec::new().max_header_len(1024).max_body_len(max);
    socklab_fuzz::drive(codec(), &input, |f| f.body.len(), max, 1024 + 4);

    // The stream as a header with a valid length field, so the JSON parser is reached.
    let mut framed = (input.stream.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(input.stream);
    let framed_input = socklab_fuzz::Input { stream: &framed, ..input };
    socklab_fuzz::drive(codec(), &framed_input, |f| f.body.len(), max, 1024 + 4);
});
