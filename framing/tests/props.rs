//! quickcheck properties for every framing codec: any messages, cut into reads at any
//! boundaries, come back exactly; arbitrary bytes never panic a decoder; hostile lengths
//! are refused before memory is reserved; end of stream inside a frame is `Truncated`.
//!
//! Each property runs 1,000 cases (set `SOCKLAB_QC_TESTS` for longer runs).

// Inside `mod framing` so that `cargo test -p socklab-harness framing` selects these tests.
mod framing {
    use std::fmt::Debug;

    use bytes::{Bytes, BytesMut};
    use quickcheck::{QuickCheck, TestResult};
    use socklab_framing::{
        CobsCodec, DelimitedCodec, Endian, FixedSizeCodec, FramingError, HeaderWidth, JsonFrame,
        JsonHeaderCodec, LengthPrefixedCodec, RawCodec, VarintCodec,
    };
    use tokio_util::codec::{Decoder, Encoder};

    /// Messages per case: enough to glue and split frames, small enough for a fast debug run.
    const MAX_MESSAGES: usize = 12;

    fn qc() -> QuickCheck {
        let tests = std::env::var("SOCKLAB_QC_TESTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
        QuickCheck::new().tests(tests).max_tests(tests * 10)
    }

    /// The length-prefix configurations every property covers.
    fn length_prefixed_variants() -> Vec<LengthPrefixedCodec> {
        vec![
            LengthPrefixedCodec::new(HeaderWidth::U8, Endian::Big),
            LengthPrefixedCodec::u16_be(),
            LengthPrefixedCodec::new(HeaderWidth::U16, Endian::Little),
            LengthPrefixedCodec::u32_be(),
            LengthPrefixedCodec::u32_le(),
            LengthPrefixedCodec::python_native_i32(),
            LengthPrefixedCodec::new(HeaderWidth::U64, Endian::Big),
            LengthPrefixedCodec::new(HeaderWidth::U64, Endian::Little),
        ]
    }

    /// How a stream is cut into reads.
    fn chunkings(len: usize, cuts: &[u16]) -> Vec<Vec<usize>> {
        let every_byte = vec![1; len];
        let all_at_once = vec![len.max(1)];
        let mut random = Vec::new();
        let mut total = 0;
        let mut sizes = cuts.iter().map(|&c| usize::from(c % 97) + 1).cycle();
        while total < len {
            // `cuts` may be empty: then fall back to reads of 7 bytes.
            let size = sizes.next().unwrap_or(7);
            random.push(size);
            total += size;
        }
        vec![every_byte, all_at_once, random]
    }

    /// Feeds `stream` to `codec` read by read, as `FramedRead` does, then signals end of
    /// stream. Stops at the first error.
    fn feed<C: Decoder>(codec: &mut C, stream: &[u8], reads: &[usize]) -> (Vec<C::Item>, Option<C::Error>) {
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        let mut rest = stream;
        for &size in reads {
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(item)) => items.push(item),
                    Ok(None) => break,
                    Err(err) => return (items, Some(err)),
                }
            }
        }
        loop {
            match codec.decode_eof(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return (items, None),
                Err(err) => return (items, Some(err)),
            }
        }
    }

    /// An encoded stream and the byte range of each frame in it.
    type Encoded = (BytesMut, Vec<(usize, usize)>);

    /// Encodes every item; returns the stream and where each frame starts and ends.
    fn encode_all<C: Encoder<I>, I: Clone>(codec: &mut C, items: &[I]) -> Result<Encoded, C::Error> {
        let mut stream = BytesMut::new();
        let mut frames = Vec::new();
        for item in items {
            let start = stream.len();
            codec.encode(item.clone(), &mut stream)?;
            frames.push((start, stream.len()));
        }
        Ok((stream, frames))
    }

    /// Any messages, any chunking: the same messages back, and no error.
    fn round_trips<C, I>(
        make: impl Fn() -> C,
        items: &[I],
        expected: &[C::Item],
        cuts: &[u16],
    ) -> Result<(), String>
    where
        C: Decoder<Error = FramingError> + Encoder<I, Error = FramingError>,
        C::Item: PartialEq + Debug,
        I: Clone,
    {
        let (stream, _) = encode_all(&mut make(), items).map_err(|e| format!("encode: {e}"))?;
        for reads in chunkings(stream.len(), cuts) {
            let (decoded, err) = feed(&mut make(), &stream, &reads);
            if let Some(err) = err {
                return Err(format!("error {err} with reads {reads:?}"));
            }
            if decoded != expected {
                return Err(format!("decoded {decoded:?}, expected {expected:?}, reads {reads:?}"));
            }
        }
        Ok(())
    }

    fn bytes_messages(msgs: &[Vec<u8>]) -> Vec<Bytes> {
        msgs.iter().take(MAX_MESSAGES).map(|m| Bytes::copy_from_slice(m)).collect()
    }

    fn result(outcome: Result<(), String>) -> TestResult {
        match outcome {
            Ok(()) => TestResult::passed(),
            Err(msg) => TestResult::error(msg),
        }
    }

    // ---- any messages, any chunking, same messages back ----

    #[test]
    fn length_prefixed_round_trips_under_any_chunking() {
        fn prop(msgs: Vec<Vec<u8>>, cuts: Vec<u16>) -> TestResult {
            let msgs = bytes_messages(&msgs);
            for codec in length_prefixed_variants() {
                if let Err(e) = round_trips(|| codec.clone(), &msgs, &msgs, &cuts) {
                    return TestResult::error(format!("{codec:?}: {e}"));
                }
            }
            TestResult::passed()
        }
        qc().quickcheck(prop as fn(Vec<Vec<u8>>, Vec<u16>) -> TestResult);
    }

    #[test]
    fn varint_round_trips_under_any_chunking() {
        fn prop(msgs: Vec<Vec<u8>>, cuts: Vec<u16>, long: u8) -> TestResult {
            let mut msgs = bytes_messages(&msgs);
            // Lengths of 128 and more take multi-byte varints; make sure some cases have them.
            msgs.push(Bytes::from(vec![long; 100 + usize::from(long) * 3]));
            result(round_trips(VarintCodec::new, &msgs, &msgs, &cuts))
        }
        qc().quickcheck(prop as fn(Vec<Vec<u8>>, Vec<u16>, u8) -> TestResult);
    }

    #[test]
    fn delimited_round_trips_under_any_chunking() {
        fn prop(msgs: Vec<Vec<u8>>, cuts: Vec<u16>, delimiter: u8) -> TestResult {
            let msgs: Vec<Bytes> = bytes_messages(&msgs)
                .into_iter()
                .map(|m| m.iter().map(|&b| if b == delimiter { b.wrapping_add(1) } else { b }).collect())
                .collect();
            result(round_trips(|| DelimitedCodec::with_delimiter(delimiter), &msgs, &msgs, &cuts))
        }
        qc().quickcheck(prop as fn(Vec<Vec<u8>>, Vec<u16>, u8) -> TestResult);
    }

    #[test]
    fn cobs_round_trips_any_payload_under_any_chunking() {
        fn prop(msgs: Vec<Vec<u8>>, cuts: Vec<u16>, run: u16) -> TestResult {
            let mut msgs = bytes_messages(&msgs);
            // Long zero-free runs cross the 254-byte COBS block limit.
            msgs.push(Bytes::from(vec![0xAB; usize::from(run % 600)]));
            result(round_trips(CobsCodec::new, &msgs, &msgs, &cuts))
        }
        qc().quickcheck(prop as fn(Vec<Vec<u8>>, Vec<u16>, u16) -> TestResult);
    }

    #[test]
    fn fixed_size_round_trips_under_any_chunking() {
        fn prop(msgs: Vec<Vec<u8>>, cuts: Vec<u16>, size: u8) -> TestResult {
            let size = usize::from(size % 40) + 1;
            let msgs: Vec<Bytes> = bytes_messages(&msgs)
                .into_iter()
                .map(|m| {
                    let mut m = m.to_vec();
                    m.resize(size, 0x5A);
                    Bytes::from(m)
                })
                .collect();
            result(round_trips(|| FixedSizeCodec::new(size), &msgs, &msgs, &cuts))
        }
        qc().quickcheck(prop as fn(Vec<Vec<u8>>, Vec<u16>, u8) -> TestResult);
    }

    #[test]
    fn json_header_round_trips_under_any_chunking() {
        fn prop(msgs: Vec<(Vec<u8>, String)>, cuts: Vec<u16>, little_endian: bool) -> TestResult {
            let endian = if little_endian { Endian::Little } else { Endian::Big };
            let frames: Vec<JsonFrame> = msgs
                .into_iter()
                .take(MAX_MESSAGES)
                .map(|(body, name)| JsonFrame::new(body).with("name", name))
                .collect();
            let expected: Vec<JsonFrame> = frames
                .iter()
                .cloned()
                .map(|f| {
                    let size = f.body.len();
                    f.with("size", size)
                })
                .collect();
            result(round_trips(|| JsonHeaderCodec::new().endian(endian), &frames, &expected, &cuts))
        }
        qc().quickcheck(prop as fn(Vec<(Vec<u8>, String)>, Vec<u16>, bool) -> TestResult);
    }

    #[test]
    fn raw_delivers_every_byte_in_order_under_any_chunking() {
        // Raw cannot give messages back (that is the point); it must lose and add nothing.
        fn prop(msgs: Vec<Vec<u8>>, cuts: Vec<u16>) -> TestResult {
            let msgs = bytes_messages(&msgs);
            let Ok((stream, _)) = encode_all(&mut RawCodec, &msgs) else { return TestResult::failed() };
            for reads in chunkings(stream.len(), &cuts) {
                let (decoded, err) = feed(&mut RawCodec, &stream, &reads);
                if err.is_some() || decoded.concat() != stream[..] || decoded.iter().any(Bytes::is_empty) {
                    return TestResult::error(format!("reads {reads:?} gave {decoded:?}, {err:?}"));
                }
            }
            TestResult::passed()
        }
        qc().quickcheck(prop as fn(Vec<Vec<u8>>, Vec<u16>) -> TestResult);
    }

    // ---- arbitrary bytes never panic ----

    /// Feeds arbitrary bytes and keeps calling the decoder after errors (a direct user
    /// might), with a bound so a decoder that stays failed cannot loop forever. Checks that
    /// no frame exceeds `max`.
    fn survives<C>(
        mut codec: C,
        data: &[u8],
        cuts: &[u16],
        frame_len: impl Fn(&C::Item) -> usize,
        max: usize,
    ) -> bool
    where
        C: Decoder<Error = FramingError>,
    {
        let reads = chunkings(data.len(), cuts).pop().unwrap_or_default();
        let mut buf = BytesMut::new();
        let mut rest = data;
        for size in reads {
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            buf.extend_from_slice(chunk);
            for _ in 0..=data.len() + 2 {
                match codec.decode(&mut buf) {
                    Ok(Some(item)) if frame_len(&item) > max => return false,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        for _ in 0..=data.len() + 2 {
            match codec.decode_eof(&mut buf) {
                Ok(Some(item)) if frame_len(&item) > max => return false,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        true
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics() {
        fn prop(data: Vec<u8>, cuts: Vec<u16>, max: u8) -> bool {
            let max = usize::from(max);
            let len = |b: &Bytes| b.len();
            let mut ok = survives(RawCodec, &data, &cuts, len, usize::MAX)
                && survives(DelimitedCodec::new().max_frame_len(max), &data, &cuts, len, max)
                && survives(CobsCodec::new().max_frame_len(max), &data, &cuts, len, max)
                && survives(VarintCodec::new().max_frame_len(max), &data, &cuts, len, max)
                && survives(FixedSizeCodec::new(max.max(1)), &data, &cuts, len, max.max(1))
                && survives(
                    JsonHeaderCodec::new().max_body_len(max),
                    &data,
                    &cuts,
                    |f: &JsonFrame| f.body.len(),
                    max,
                );
            for codec in length_prefixed_variants() {
                ok &= survives(codec.max_frame_len(max), &data, &cuts, len, max);
            }
            ok
        }
        qc().quickcheck(prop as fn(Vec<u8>, Vec<u16>, u8) -> bool);
    }

    #[test]
    fn decoding_json_like_headers_never_panics() {
        // Arbitrary bytes rarely get past the JSON parser; aim at its edges too.
        fn prop(json: String, body: Vec<u8>, cuts: Vec<u16>) -> bool {
            let mut stream = (json.len() as u32).to_be_bytes().to_vec();
            stream.extend_from_slice(json.as_bytes());
            stream.extend_from_slice(&body);
            let mut sized = format!("{{\"size\": {}}}", body.len()).into_bytes();
            sized.splice(0..0, (sized.len() as u32).to_be_bytes());
            sized.extend_from_slice(&body);
            let len = |f: &JsonFrame| f.body.len();
            survives(JsonHeaderCodec::new(), &stream, &cuts, len, usize::MAX)
                && survives(JsonHeaderCodec::new(), &sized, &cuts, len, usize::MAX)
        }
        qc().quickcheck(prop as fn(String, Vec<u8>, Vec<u16>) -> bool);
    }

    // ---- the single-read fast path and the states agree ----

    /// Decodes `data` in one read (every whole frame takes the fast path) and in the
    /// reads of `cuts` (frames split across reads go through the decoder's states): the
    /// frames before the first error must be the same, and so must the error. `exact`
    /// compares errors by their message; without it by variant only, for the delimiter
    /// codecs, whose `FrameTooLarge` counts the bytes buffered when the limit was crossed.
    fn same_in_one_read_and_split<C>(
        make: impl Fn() -> C,
        data: &[u8],
        cuts: &[u16],
        exact: bool,
    ) -> Result<(), String>
    where
        C: Decoder<Error = FramingError>,
        C::Item: PartialEq + Debug,
    {
        let (whole, whole_err) = feed(&mut make(), data, &[data.len().max(1)]);
        for reads in chunkings(data.len(), cuts) {
            let (split, split_err) = feed(&mut make(), data, &reads);
            let same_err = match (&whole_err, &split_err) {
                (None, None) => true,
                (Some(a), Some(b)) if exact => a.to_string() == b.to_string(),
                (Some(a), Some(b)) => std::mem::discriminant(a) == std::mem::discriminant(b),
                _ => false,
            };
            if split != whole || !same_err {
                return Err(format!(
                    "one read: {whole:?} then {whole_err:?}; reads {reads:?}: {split:?} then {split_err:?}"
                ));
            }
        }
        Ok(())
    }

    #[test]
    fn one_read_and_split_reads_decode_any_bytes_alike() {
        fn prop(data: Vec<u8>, cuts: Vec<u16>, max: u8) -> TestResult {
            let max = usize::from(max) * 4;
            let mut checks = vec![
                (
                    "varint",
                    same_in_one_read_and_split(|| VarintCodec::new().max_frame_len(max), &data, &cuts, true),
                ),
                (
                    "json-header",
                    same_in_one_read_and_split(
                        || JsonHeaderCodec::new().max_header_len(64).max_body_len(max),
                        &data,
                        &cuts,
                        true,
                    ),
                ),
                ("fixed", same_in_one_read_and_split(|| FixedSizeCodec::new(max.max(1)), &data, &cuts, true)),
                (
                    "line",
                    same_in_one_read_and_split(
                        || DelimitedCodec::new().max_frame_len(max),
                        &data,
                        &cuts,
                        false,
                    ),
                ),
                (
                    "cobs",
                    same_in_one_read_and_split(|| CobsCodec::new().max_frame_len(max), &data, &cuts, false),
                ),
            ];
            for codec in length_prefixed_variants() {
                let codec = codec.max_frame_len(max);
                checks.push((
                    "length prefix",
                    same_in_one_read_and_split(|| codec.clone(), &data, &cuts, true),
                ));
            }
            for (name, check) in checks {
                if let Err(e) = check {
                    return TestResult::error(format!("{name}: {e}"));
                }
            }
            TestResult::passed()
        }
        qc().quickcheck(prop as fn(Vec<u8>, Vec<u16>, u8) -> TestResult);
    }

    #[test]
    fn one_read_and_split_reads_decode_valid_streams_with_bad_frames_alike() {
        // Arbitrary bytes rarely form whole frames; these streams are valid frames with an
        // oversized one (skipped) and a cut one (truncated) among them.
        fn prop(msgs: Vec<Vec<u8>>, cuts: Vec<u16>, max: u8, cut: u8) -> TestResult {
            let msgs = bytes_messages(&msgs);
            let max = usize::from(max);
            for codec in length_prefixed_variants() {
                let Ok((mut stream, _)) = encode_all(&mut codec.clone(), &msgs) else {
                    return TestResult::discard();
                };
                stream.truncate(stream.len().saturating_sub(usize::from(cut) % 3));
                let codec = codec.max_frame_len(max);
                if let Err(e) = same_in_one_read_and_split(|| codec.clone(), &stream, &cuts, true) {
                    return TestResult::error(format!("{codec:?}: {e}"));
                }
            }
            let Ok((stream, _)) = encode_all(&mut VarintCodec::new(), &msgs) else {
                return TestResult::discard();
            };
            if let Err(e) =
                same_in_one_read_and_split(|| VarintCodec::new().max_frame_len(max), &stream, &cuts, true)
            {
                return TestResult::error(format!("varint: {e}"));
            }
            let frames: Vec<JsonFrame> = msgs.iter().map(|m| JsonFrame::new(m.clone())).collect();
            let Ok((stream, _)) = encode_all(&mut JsonHeaderCodec::new(), &frames) else {
                return TestResult::discard();
            };
            let json = || JsonHeaderCodec::new().max_body_len(max);
            if let Err(e) = same_in_one_read_and_split(json, &stream, &cuts, true) {
                return TestResult::error(format!("json-header: {e}"));
            }
            TestResult::passed()
        }
        qc().quickcheck(prop as fn(Vec<Vec<u8>>, Vec<u16>, u8, u8) -> TestResult);
    }

    // ---- hostile lengths: FrameTooLarge before any reservation, then resync ----

    /// `stream` announces a frame over the limit; decoding it in one read must fail with
    /// `FrameTooLarge { len, max }` and leave the buffer's capacity at most `cap_limit`.
    fn refuses<C: Decoder<Error = FramingError, Item: Debug>>(
        codec: &mut C,
        stream: &[u8],
        len: u64,
        max: u64,
        cap_limit: usize,
    ) -> Result<(), String> {
        let mut buf = BytesMut::from(stream);
        match codec.decode(&mut buf) {
            Err(FramingError::FrameTooLarge { len: l, max: m }) if l == len && m == max => {}
            other => {
                return Err(format!("expected FrameTooLarge {{ len: {len}, max: {max} }}, got {other:?}"));
            }
        }
        if buf.capacity() > cap_limit {
            return Err(format!("capacity grew to {} (limit {cap_limit})", buf.capacity()));
        }
        Ok(())
    }

    #[test]
    fn length_prefixed_refuses_an_over_max_length_then_skips_it() {
        fn prop(max: u16, excess: u64, body_len: u8, next: Vec<u8>) -> TestResult {
            for codec in length_prefixed_variants() {
                let max = usize::from(max % 200);
                let mut codec = codec.max_frame_len(max);
                let header_len = codec.header_len();
                let field_max = codec.clone().max_frame_len(usize::MAX).effective_max_frame_len();
                let len = (max as u64 + 1 + excess % 1000).min(field_max);
                if len <= max as u64 {
                    continue;
                }
                let mut wire = BytesMut::new();
                let mut announce = codec.clone().max_frame_len(usize::MAX);
                // Announce `len` but send only a few body bytes in this read.
                let header = {
                    let mut h = BytesMut::new();
                    if announce.encode(vec![0u8; len as usize], &mut h).is_err() {
                        return TestResult::error("cannot build header");
                    }
                    h.truncate(header_len);
                    h
                };
                wire.extend_from_slice(&header);
                let first = usize::from(body_len).min(max).min(len as usize);
                wire.extend_from_slice(&vec![0xEE; first]);
                if let Err(e) = refuses(&mut codec, &wire, len, max as u64, max + header_len) {
                    return TestResult::error(format!("{codec:?}: {e}"));
                }
                // The rest of the oversized body, then a good frame: decoding resumes.
                let mut next = next.clone();
                next.truncate(max.min(255));
                let mut rest = BytesMut::from(&vec![0xEE; len as usize][..]);
                if codec.encode(&next, &mut rest).is_err() {
                    return TestResult::error("cannot encode follow-up frame");
                }
                let (decoded, err) = feed(&mut codec, &rest, &[rest.len()]);
                if err.is_some() || decoded != [Bytes::from(next)] {
                    return TestResult::error(format!("{codec:?}: after skip got {decoded:?}, {err:?}"));
                }
            }
            TestResult::passed()
        }
        qc().quickcheck(prop as fn(u16, u64, u8, Vec<u8>) -> TestResult);
    }

    #[test]
    fn varint_refuses_an_over_max_length_then_skips_it() {
        fn prop(max: u16, len: u64, next: Vec<u8>) -> TestResult {
            let max = usize::from(max);
            let len = len.max(max as u64 + 1);
            let mut codec = VarintCodec::new().max_frame_len(max);
            let mut header = Vec::new();
            let mut v = len;
            while v >= 0x80 {
                header.push(v as u8 | 0x80);
                v >>= 7;
            }
            header.push(v as u8);
            if let Err(e) = refuses(&mut codec, &header, len, max as u64, max + header.len()) {
                return TestResult::error(e);
            }
            if len > max as u64 + 5000 {
                return TestResult::passed();
            }
            let mut rest = BytesMut::from(&vec![0x11; len as usize][..]);
            if codec.encode(&next, &mut rest).is_err() {
                return TestResult::discard();
            }
            let (decoded, err) = feed(&mut codec, &rest, &[rest.len()]);
            if err.is_some() || decoded != [Bytes::from(next)] {
                return TestResult::error(format!("after skip got {decoded:?}, {err:?}"));
            }
            TestResult::passed()
        }
        qc().quickcheck(prop as fn(u16, u64, Vec<u8>) -> TestResult);
    }

    #[test]
    fn json_header_refuses_over_max_headers_and_bodies() {
        fn prop(max_header: u8, header_len: u32, max_body: u16, size: u64) -> TestResult {
            // An over-long header: refused from the length field alone.
            let max_header = usize::from(max_header);
            let header_len = header_len.max(max_header as u32 + 1);
            let mut codec = JsonHeaderCodec::new().max_header_len(max_header);
            if let Err(e) = refuses(
                &mut codec,
                &header_len.to_be_bytes(),
                u64::from(header_len),
                max_header as u64,
                max_header + 4,
            ) {
                return TestResult::error(format!("header: {e}"));
            }
            // An over-large body: refused once the header is parsed, before reserving it.
            let max_body = usize::from(max_body);
            let size = size.max(max_body as u64 + 1);
            let json = format!("{{\"size\":{size}}}");
            let mut wire = (json.len() as u32).to_be_bytes().to_vec();
            wire.extend_from_slice(json.as_bytes());
            let mut codec = JsonHeaderCodec::new().max_body_len(max_body);
            if let Err(e) = refuses(&mut codec, &wire, size, max_body as u64, wire.len()) {
                return TestResult::error(format!("body: {e}"));
            }
            TestResult::passed()
        }
        qc().quickcheck(prop as fn(u8, u32, u16, u64) -> TestResult);
    }

    /// Feeds a delimiter-free run one byte at a time into a buffer sized `max + 1`: the
    /// decoder must refuse it exactly when it passes the limit, without growing the buffer.
    fn refuses_byte_by_byte<C: Decoder<Error = FramingError, Item: Debug>>(
        codec: &mut C,
        run: &[u8],
        cap: usize,
    ) -> Result<u64, String> {
        let mut buf = BytesMut::with_capacity(cap);
        let cap_before = buf.capacity();
        for &b in run {
            buf.extend_from_slice(&[b]);
            match codec.decode(&mut buf) {
                Ok(None) => {}
                Err(FramingError::FrameTooLarge { len, .. }) => {
                    if buf.capacity() > cap_before {
                        return Err(format!("capacity grew from {cap_before} to {}", buf.capacity()));
                    }
                    return Ok(len);
                }
                other => return Err(format!("unexpected {other:?}")),
            }
        }
        Err("never refused".to_owned())
    }

    #[test]
    fn delimited_and_cobs_refuse_an_over_max_frame_then_resync() {
        fn prop(max: u8, fill: u8, next: Vec<u8>) -> TestResult {
            let max = usize::from(max);
            let fill = fill.max(1);
            // Delimited: max payload bytes plus the delimiter fit; one more byte does not.
            let delimiter = fill.wrapping_add(1);
            let mut codec = DelimitedCodec::with_delimiter(delimiter).max_frame_len(max);
            match refuses_byte_by_byte(&mut codec, &vec![fill; max + 10], max + 1) {
                Ok(len) if len == max as u64 + 1 => {}
                other => return TestResult::error(format!("delimited: {other:?}")),
            }
            let next: Vec<u8> = next.into_iter().take(max).filter(|&b| b != delimiter).collect();
            let mut rest = BytesMut::from(&[fill, fill, delimiter][..]);
            if codec.encode(&next, &mut rest).is_err() {
                return TestResult::error("delimited: cannot encode follow-up");
            }
            match feed(&mut codec, &rest, &vec![1; rest.len()]) {
                (decoded, None) if decoded == [Bytes::from(next.clone())] => {}
                other => return TestResult::error(format!("delimited after resync: {other:?}")),
            }
            // COBS: the limit is on the stuffed length, computed from the payload limit.
            let mut codec = CobsCodec::new().max_frame_len(max);
            let encoded_max = max + max / 254 + 2;
            if let Err(e) = refuses_byte_by_byte(&mut codec, &vec![fill; encoded_max + 10], encoded_max) {
                return TestResult::error(format!("cobs: {e}"));
            }
            let mut rest = BytesMut::from(&[fill, fill, 0][..]);
            if codec.encode(&next, &mut rest).is_err() {
                return TestResult::error("cobs: cannot encode follow-up");
            }
            match feed(&mut codec, &rest, &[rest.len()]) {
                (decoded, None) if decoded == [Bytes::from(next)] => TestResult::passed(),
                other => TestResult::error(format!("cobs after resync: {other:?}")),
            }
        }
        qc().quickcheck(prop as fn(u8, u8, Vec<u8>) -> TestResult);
    }

    // ---- end of stream inside a frame: Truncated ----

    /// Cuts the encoded stream strictly inside the last frame: every earlier message comes
    /// back, then `Truncated` with `got` = bytes of that frame that arrived.
    fn truncates<C, I>(
        make: impl Fn() -> C,
        items: &[I],
        expected: &[C::Item],
        cut: u16,
        cuts: &[u16],
    ) -> Result<(), String>
    where
        C: Decoder<Error = FramingError> + Encoder<I, Error = FramingError>,
        C::Item: PartialEq + Debug,
        I: Clone,
    {
        let (stream, frames) = encode_all(&mut make(), items).map_err(|e| format!("encode: {e}"))?;
        let Some(&(start, end)) = frames.last() else { return Ok(()) };
        if end - start < 2 {
            return Ok(());
        }
        let stop = start + 1 + usize::from(cut) % (end - start - 1);
        let cut_stream = &stream[..stop];
        let mut readings = chunkings(cut_stream.len(), cuts);
        readings.remove(0); // every byte alone is covered by the round-trip properties
        for reads in readings {
            let (decoded, err) = feed(&mut make(), cut_stream, &reads);
            if decoded != expected[..expected.len() - 1] {
                return Err(format!("decoded {decoded:?} before the cut"));
            }
            match err {
                Some(FramingError::Truncated { expected, got })
                    if got == (stop - start) as u64 && expected > got && expected <= (end - start) as u64 => {
                }
                other => return Err(format!("cut at {stop} in frame {start}..{end}: got {other:?}")),
            }
        }
        Ok(())
    }

    #[test]
    fn eof_mid_frame_is_truncated_for_every_codec() {
        fn prop(msgs: Vec<Vec<u8>>, last: Vec<u8>, cut: u16, cuts: Vec<u16>, name: String) -> TestResult {
            let mut msgs = bytes_messages(&msgs);
            msgs.push(Bytes::from(last));
            let checks = [
                truncates(VarintCodec::new, &msgs, &msgs, cut, &cuts),
                truncates(CobsCodec::new, &msgs, &msgs, cut, &cuts),
                {
                    let lines: Vec<Bytes> = msgs
                        .iter()
                        .map(|m| m.iter().map(|&b| if b == b'\n' { b'.' } else { b }).collect())
                        .collect();
                    truncates(DelimitedCodec::new, &lines, &lines, cut, &cuts)
                },
                {
                    let records: Vec<Bytes> = msgs
                        .iter()
                        .map(|m| Bytes::from([&m[..], &[7u8; 9][..]].concat()[..9].to_vec()))
                        .collect();
                    truncates(|| FixedSizeCodec::new(9), &records, &records, cut, &cuts)
                },
                {
                    let frames: Vec<JsonFrame> =
                        msgs.iter().map(|m| JsonFrame::new(m.clone()).with("name", name.clone())).collect();
                    let expected: Vec<JsonFrame> = frames
                        .iter()
                        .cloned()
                        .map(|f| {
                            let size = f.body.len();
                            f.with("size", size)
                        })
                        .collect();
                    truncates(JsonHeaderCodec::new, &frames, &expected, cut, &cuts)
                },
            ];
            for check in checks {
                if let Err(e) = check {
                    return TestResult::error(e);
                }
            }
            for codec in length_prefixed_variants() {
                if let Err(e) = truncates(|| codec.clone(), &msgs, &msgs, cut, &cuts) {
                    return TestResult::error(format!("{codec:?}: {e}"));
                }
            }
            TestResult::passed()
        }
        qc().quickcheck(prop as fn(Vec<Vec<u8>>, Vec<u8>, u16, Vec<u16>, String) -> TestResult);
    }
}
