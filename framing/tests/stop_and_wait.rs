//! The stop-and-wait protocol over an in-memory duplex pipe and over loopback TCP.

// Inside `mod framing` so that `cargo test -p socklab-harness framing` selects these tests.
mod framing {
    use std::time::Duration;

    use socklab_framing::FramingError;
    use socklab_framing::stop_and_wait::{self, ACK};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn messages() -> Vec<Vec<u8>> {
        vec![
            b"hello".to_vec(),
            Vec::new(),
            vec![0u8; 1],
            (0..100_000u32).map(|i| (i % 251) as u8).collect(),
            b"bye".to_vec(),
        ]
    }

    /// Sends every message from one end and receives them at the other, then a clean EOF.
    async fn exchange<A, B>(mut sender: A, mut receiver: B)
    where
        A: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        B: AsyncRead + AsyncWrite + Unpin,
    {
        let send = tokio::spawn(async move {
            for m in messages() {
                stop_and_wait::send(&mut sender, &m).await.unwrap();
            }
            sender.shutdown().await.unwrap();
        });
        for expected in messages() {
            let got = stop_and_wait::recv(&mut receiver, 1 << 20).await.unwrap().expect("a message");
            assert_eq!(got, expected);
        }
        assert_eq!(stop_and_wait::recv(&mut receiver, 1 << 20).await.unwrap(), None, "clean EOF");
        send.await.unwrap();
    }

    #[tokio::test]
    async fn messages_cross_a_duplex_pipe() {
        // A 64-byte pipe forces the 100 kB body through many partial reads and writes.
        let (a, b) = tokio::io::duplex(64);
        exchange(a, b).await;
    }

    #[tokio::test]
    async fn messages_cross_loopback_tcp() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connect = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (server, _) = listener.accept().await.unwrap();
        let client = connect.await.unwrap();
        client.set_nodelay(true).unwrap();
        server.set_nodelay(true).unwrap();
        exchange(client, server).await;
    }

    #[tokio::test]
    async fn the_body_waits_for_the_ack() {
        let (mut sender, mut receiver) = tokio::io::duplex(1024);
        let send = tokio::spawn(async move { stop_and_wait::send(&mut sender, b"body").await });
        let mut header = [0u8; 4];
        receiver.read_exact(&mut header).await.unwrap();
        assert_eq!(header, 4u32.to_be_bytes());
        // Nothing more may arrive until we answer; a wrong implementation would send the
        // body at once, so a short wait can only fail a wrong implementation.
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(50), receiver.read(&mut byte)).await;
        assert!(early.is_err(), "body arrived before the ACK: {early:?}");
        receiver.write_all(&[ACK]).await.unwrap();
        let mut body = [0u8; 4];
        receiver.read_exact(&mut body).await.unwrap();
        assert_eq!(&body, b"body");
        send.await.unwrap().unwrap();
    }

    /// `recv_announcement` reads the length and answers nothing, so a receiver can decide
    /// (room for the body?) before `recv_body` acknowledges it; the two make one `recv`.
    #[tokio::test]
    async fn the_announcement_is_not_answered_until_the_body_is_asked_for() {
        let (mut sender, mut receiver) = tokio::io::duplex(1024);
        let send = tokio::spawn(async move { stop_and_wait::send(&mut sender, b"body").await });
        let len = stop_and_wait::recv_announcement(&mut receiver).await.unwrap();
        assert_eq!(len, Some(4));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!send.is_finished(), "the sender went on without an answer");
        let body = stop_and_wait::recv_body(&mut receiver, 4, 100).await.unwrap();
        assert_eq!(&body[..], b"body");
        send.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_over_max_length_is_refused_at_both_ends_without_sending_the_body() {
        let (mut sender, mut receiver) = tokio::io::duplex(1024);
        let send = tokio::spawn(async move { stop_and_wait::send(&mut sender, &[7u8; 100]).await });
        let err = stop_and_wait::recv(&mut receiver, 10).await.unwrap_err();
        assert!(matches!(err, FramingError::FrameTooLarge { len: 100, max: 10 }), "{err}");
        let err = send.await.unwrap().unwrap_err();
        assert!(matches!(err, FramingError::FrameTooLarge { len: 100, max: 10 }), "{err}");
        // The sender is done and has dropped its end: nothing of the body was sent.
        let mut rest = Vec::new();
        receiver.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "{} body bytes sent after NAK", rest.len());
    }

    #[tokio::test]
    async fn eof_inside_a_message_is_truncated() {
        let (mut sender, mut receiver) = tokio::io::duplex(1024);
        sender.write_all(&[0, 0]).await.unwrap();
        drop(sender);
        let err = stop_and_wait::recv(&mut receiver, 100).await.unwrap_err();
        assert!(matches!(err, FramingError::Truncated { expected: 4, got: 2 }), "{err}");

        let (mut sender, mut receiver) = tokio::io::duplex(1024);
        let peer = tokio::spawn(async move {
            sender.write_all(&10u32.to_be_bytes()).await.unwrap();
            let mut ack = [0u8; 1];
            sender.read_exact(&mut ack).await.unwrap();
            sender.write_all(b"abc").await.unwrap();
        });
        let err = stop_and_wait::recv(&mut receiver, 100).await.unwrap_err();
        assert!(matches!(err, FramingError::Truncated { expected: 14, got: 7 }), "{err}");
        peer.await.unwrap();
    }

    #[tokio::test]
    async fn a_receiver_that_answers_nonsense_is_an_invalid_header() {
        let (mut sender, mut receiver) = tokio::io::duplex(1024);
        let peer = tokio::spawn(async move {
            let mut header = [0u8; 4];
            receiver.read_exact(&mut header).await.unwrap();
            receiver.write_all(b"?").await.unwrap();
            receiver
        });
        let err = stop_and_wait::send(&mut sender, b"x").await.unwrap_err();
        assert!(matches!(err, FramingError::InvalidHeader { .. }), "{err}");
        drop(peer.await.unwrap());

        let (mut sender, receiver) = tokio::io::duplex(1024);
        drop(receiver);
        assert!(stop_and_wait::send(&mut sender, b"x").await.is_err(), "receiver gone");
    }
}
