//! The sticky-packet problem with fixed bytes: three writes read back in 5-byte reads,
//! without framing (corrupted) and with a length prefix (exact); every codec's exact
//! wire bytes; every codec over a real loopback TCP connection.

// Inside `mod framing` so that `cargo test -p socklab-harness framing` selects these tests.
mod framing {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    use socklab_framing::{
        CobsCodec, DelimitedCodec, FixedSizeCodec, FramingError, JsonFrame, JsonHeaderCodec,
        LengthPrefixedCodec, RawCodec, VarintCodec,
    };
    use tokio::io::{AsyncRead, ReadBuf};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

    /// A reader that hands out at most `read_size` bytes per read, like `recv(5)`.
    struct SmallReads {
        data: Vec<u8>,
        pos: usize,
        read_size: usize,
    }

    impl AsyncRead for SmallReads {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self.read_size.min(buf.remaining()).min(self.data.len() - self.pos);
            let start = self.pos;
            buf.put_slice(&self.data[start..start + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    const WRITES: [&str; 3] = ["1234567", "abcde", "hhhhh"];

    async fn read_all<D>(decoder: D, wire: Vec<u8>, read_size: usize) -> Vec<Result<D::Item, D::Error>>
    where
        D: Decoder,
    {
        FramedRead::new(SmallReads { data: wire, pos: 0, read_size }, decoder).collect().await
    }

    fn encode_writes<E: Encoder<&'static str>>(mut encoder: E) -> Vec<u8>
    where
        E::Error: std::fmt::Debug,
    {
        let mut wire = bytes::BytesMut::new();
        for w in WRITES {
            encoder.encode(w, &mut wire).expect("encodes");
        }
        wire.to_vec()
    }

    #[tokio::test]
    async fn without_framing_five_byte_reads_corrupt_the_messages() {
        let wire = encode_writes(RawCodec);
        assert_eq!(wire, b"1234567abcdehhhhh");
        let reads: Vec<Bytes> = read_all(RawCodec, wire, 5).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(reads, ["12345", "67abc", "dehhh", "hh"]);
    }

    #[tokio::test]
    async fn with_a_length_prefix_five_byte_reads_give_the_exact_messages() {
        let wire = encode_writes(LengthPrefixedCodec::u32_be());
        assert_eq!(wire, b"\0\0\0\x071234567\0\0\0\x05abcde\0\0\0\x05hhhhh");
        let frames: Vec<Bytes> =
            read_all(LengthPrefixedCodec::u32_be(), wire, 5).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(frames, WRITES);
    }

    #[tokio::test]
    async fn every_framing_recovers_the_messages_from_five_byte_reads() {
        async fn check<C>(codec: C)
        where
            C: Decoder<Item = Bytes, Error = FramingError>
                + Encoder<&'static str, Error = FramingError>
                + Clone,
        {
            let wire = encode_writes(codec.clone());
            let frames: Vec<Bytes> = read_all(codec, wire, 5).await.into_iter().map(Result::unwrap).collect();
            assert_eq!(frames, WRITES);
        }
        check(DelimitedCodec::new()).await;
        check(CobsCodec::new()).await;
        check(VarintCodec::new()).await;
        check(LengthPrefixedCodec::python_native_i32()).await;
    }

    #[test]
    fn every_codec_writes_the_documented_wire_bytes() {
        fn wire<E: Encoder<&'static str, Error = FramingError>>(mut e: E, payload: &'static str) -> Vec<u8> {
            let mut dst = bytes::BytesMut::new();
            e.encode(payload, &mut dst).unwrap();
            dst.to_vec()
        }
        assert_eq!(wire(RawCodec, "hello"), b"hello");
        assert_eq!(wire(DelimitedCodec::new(), "hello"), b"hello\n");
        assert_eq!(wire(CobsCodec::new(), "hello"), b"\x06hello\0");
        assert_eq!(wire(LengthPrefixedCodec::u32_be(), "hello"), b"\0\0\0\x05hello");
        assert_eq!(wire(LengthPrefixedCodec::u32_le(), "hello"), b"\x05\0\0\0hello");
        assert_eq!(wire(LengthPrefixedCodec::u16_be(), "hello"), b"\0\x05hello");
        assert_eq!(wire(LengthPrefixedCodec::python_native_i32(), "hello"), b"\x05\0\0\0hello");
        assert_eq!(wire(VarintCodec::new(), "hello"), b"\x05hello");
        assert_eq!(wire(FixedSizeCodec::new(5), "hello"), b"hello");
        let mut json = bytes::BytesMut::new();
        JsonHeaderCodec::new().encode(JsonFrame::new("hello").with("name", "a.txt"), &mut json).unwrap();
        assert_eq!(&json[..], b"\0\0\0\x19{\"name\":\"a.txt\",\"size\":5}hello");
    }

    #[test]
    fn encoders_refuse_payloads_their_framing_cannot_carry() {
        let mut dst = bytes::BytesMut::new();
        assert!(matches!(
            FixedSizeCodec::new(4).encode("abc", &mut dst),
            Err(FramingError::WrongSize { len: 3, expected: 4 })
        ));
        assert!(matches!(
            DelimitedCodec::new().encode("a\nb", &mut dst),
            Err(FramingError::DelimiterInPayload { delimiter: b'\n', position: 1 })
        ));
        assert!(matches!(
            LengthPrefixedCodec::u32_be().max_frame_len(2).encode("abc", &mut dst),
            Err(FramingError::FrameTooLarge { len: 3, max: 2 })
        ));
        assert!(dst.is_empty(), "a refused payload writes nothing");
    }

    /// Sends `messages` over a loopback TCP connection with one codec and reads them back.
    async fn over_tcp<C, I>(codec: C, messages: Vec<I>) -> Vec<C::Item>
    where
        C: Decoder<Error = FramingError> + Encoder<I, Error = FramingError> + Clone + Send + 'static,
        I: Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer_codec = codec.clone();
        let writer = tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let mut sink = FramedWrite::new(stream, writer_codec);
            for m in messages {
                sink.feed(m).await.unwrap();
            }
            sink.close().await.unwrap();
        });
        let (stream, _) = listener.accept().await.unwrap();
        let frames = FramedRead::new(stream, codec).map(Result::unwrap).collect().await;
        writer.await.unwrap();
        frames
    }

    #[tokio::test]
    async fn every_codec_round_trips_over_loopback_tcp() {
        let messages: Vec<Bytes> =
            (0..200u32).map(|i| Bytes::from(vec![(i % 251) as u8 | 1; (i as usize * 37) % 3000])).collect();
        let lines: Vec<Bytes> =
            messages.iter().map(|m| m.iter().map(|&b| if b == b'\n' { b'.' } else { b }).collect()).collect();
        assert_eq!(over_tcp(LengthPrefixedCodec::u32_be(), messages.clone()).await, messages);
        assert_eq!(over_tcp(VarintCodec::new(), messages.clone()).await, messages);
        assert_eq!(over_tcp(CobsCodec::new(), messages.clone()).await, messages);
        assert_eq!(over_tcp(DelimitedCodec::new(), lines.clone()).await, lines);
        let records: Vec<Bytes> = (0..500u32).map(|i| Bytes::from(vec![i as u8; 64])).collect();
        assert_eq!(over_tcp(FixedSizeCodec::new(64), records.clone()).await, records);
        let frames: Vec<JsonFrame> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| JsonFrame::new(m.clone()).with("name", format!("f{i}")))
            .collect();
        let back = over_tcp(JsonHeaderCodec::new(), frames.clone()).await;
        assert_eq!(back.len(), frames.len());
        for (got, sent) in back.iter().zip(&frames) {
            assert_eq!((got.name(), &got.body), (sent.name(), &sent.body));
            assert_eq!(got.header["size"], sent.body.len());
        }
    }

    #[tokio::test]
    async fn a_peer_that_closes_mid_frame_is_truncated_over_tcp() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(b"\0\0\0\x02ok\0\0\0\x10only-part").await.unwrap();
            stream.shutdown().await.unwrap();
        });
        let (stream, _) = listener.accept().await.unwrap();
        let results: Vec<_> = FramedRead::new(stream, LengthPrefixedCodec::u32_be()).collect().await;
        writer.await.unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].as_ref().unwrap(), "ok");
        assert!(
            matches!(results[1], Err(FramingError::Truncated { expected: 20, got: 13 })),
            "{:?}",
            results[1]
        );
    }
}
