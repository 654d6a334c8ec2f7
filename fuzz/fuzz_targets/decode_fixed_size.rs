#![no_main]
//! Fixed size: every record is exactly the record length, whatever the reads.

use libfuzzer_sys::fuzz_target;
use socklab_framing::FixedSizeCodec;

fuzz_target!(|data: &[u8]| {
    let Some(input) = socklab_fuzz::split(data) else { return };
    let size = usize::from(input.config) + 1;
    socklab_fuzz::drive(FixedSizeCodec::new(size), &input, |f| f.len(), size, 0);
});
