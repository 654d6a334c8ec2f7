//! A bulk transfer of a known byte stream, and the receiver that verifies it while
//! counting its reads: the two ends of `recv-buffer`, whose receiving end `socklab agent`
//! runs on another host. The stream is a [`pattern`] both ends share.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::PeerError;
use crate::net::{recv_buffer, set_quickack};

/// How long one blocking read waits before the receiver looks at its stop flag again.
const POLL: Duration = Duration::from_millis(50);

/// What the receiver saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkReceived {
    /// Bytes received.
    pub received: u64,
    /// Reads that returned data.
    pub reads: u64,
    /// Most bytes one read returned.
    pub max_read: usize,
    /// Stream offset of the first byte that was not the pattern's.
    pub first_mismatch: Option<u64>,
    /// `SO_RCVBUF` after the transfer.
    pub rcvbuf_effective: usize,
    /// From `started` to EOF.
    pub elapsed: Duration,
}

/// Reads `stream` with `read(read_size)` until EOF, checking it against the [`pattern`]
/// (setting `TCP_QUICKACK` before every read when `quickack`). Gives up after `silence`
/// without a byte, or when `stop()` turns true.
///
/// # Errors
/// [`PeerError::Stream`] when a read fails or the sender goes silent;
/// [`PeerError::TooManyBytes`] past `expected` bytes; [`PeerError::Stopped`] when
/// stopped.
pub fn receive_pattern(
    mut stream: TcpStream,
    expected: u64,
    read_size: usize,
    quickack: bool,
    started: Instant,
    silence: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<BulkReceived, PeerError> {
    let peer = stream.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    stream.set_read_timeout(Some(POLL)).map_err(PeerError::stream("set a read timeout"))?;
    let mut buf = vec![0u8; read_size.max(1)];
    let mut verifier = pattern::Verifier::new();
    let (mut reads, mut max_read) = (0u64, 0usize);
    let mut last_byte = Instant::now();
    // Every read returns at least one byte or EOF, or times out after POLL; the loop is
    // bounded by `expected` bytes, the silence limit and the stop flag.
    loop {
        if quickack {
            set_quickack(&stream, true).map_err(PeerError::stream("set TCP_QUICKACK"))?;
        }
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if stop() {
                    return Err(PeerError::Stopped);
                }
                if last_byte.elapsed() >= silence {
                    return Err(PeerError::Stream {
                        context: format!("read from {peer} at byte {}", verifier.position()),
                        error: std::io::Error::new(
                            ErrorKind::TimedOut,
                            format!("no byte for {} s", silence.as_secs()),
                        ),
                    });
                }
                continue;
            }
            Err(error) => {
                return Err(PeerError::Stream {
                    context: format!("read at byte {}", verifier.position()),
                    error,
                });
            }
        };
        if n == 0 {
            break;
        }
        last_byte = Instant::now();
        verifier.check(&buf[..n]);
        reads += 1;
        max_read = max_read.max(n);
        if verifier.position() > expected {
            return Err(PeerError::TooManyBytes { peer, received: verifier.position(), expected });
        }
    }
    Ok(BulkReceived {
        received: verifier.position(),
        reads,
        max_read,
        first_mismatch: verifier.first_mismatch(),
        rcvbuf_effective: recv_buffer(&stream).map_err(PeerError::stream("read SO_RCVBUF"))?,
        elapsed: started.elapsed(),
    })
}

/// The bytes of a transfer, cheap to produce and to verify.
///
/// The stream is a sequence of [`BLOCK`](pattern::BLOCK)-byte blocks: block `b` is `b` as
/// a little-endian `u64`, then a fixed pseudo-random body of non-zero bytes. The block
/// number catches a lost, repeated or reordered chunk whose length is a multiple of the
/// block; the body catches any other shift (a body byte is never zero, a block number's
/// top byte always is, and the body does not match itself shifted); both catch a changed
/// byte. Writing costs 8 bytes per block; reading, one `memcmp` per block.
pub mod pattern {
    /// Bytes per block.
    pub const BLOCK: usize = 4096;
    /// Bytes of the block number at the start of each block.
    const HEADER: usize = 8;

    /// The fixed body of every block (the first [`HEADER`] bytes are unused, zero).
    fn body() -> Box<[u8; BLOCK]> {
        let mut block = Box::new([0u8; BLOCK]);
        // xorshift64: any fixed sequence of non-zero bytes with no short period will do.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for b in &mut block[HEADER..] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 56) as u8 | 1;
        }
        block
    }

    fn header(block: u64) -> [u8; HEADER] {
        block.to_le_bytes()
    }

    /// The writing end: hands out any range of the stream from a tile of blocks laid out
    /// once, rewriting only the block numbers.
    pub struct Source {
        tile: Vec<u8>,
    }

    impl Source {
        /// A source for chunks of at most `max_chunk` bytes.
        pub fn new(max_chunk: usize) -> Self {
            let blocks = max_chunk.div_ceil(BLOCK) + 1;
            let body = body();
            let mut tile = Vec::with_capacity(blocks * BLOCK);
            for _ in 0..blocks {
                tile.extend_from_slice(&body[..]);
            }
            Source { tile }
        }

        /// Bytes `offset..offset + len` of the stream.
        ///
        /// # Panics
        /// When `len` is larger than the `max_chunk` given to [`Source::new`].
        pub fn chunk(&mut self, offset: u64, len: usize) -> &[u8] {
            let phase = (offset % BLOCK as u64) as usize;
            let first_block = offset / BLOCK as u64;
            let end = phase + len;
            assert!(end <= self.tile.len(), "chunk of {len} bytes from a source made for less");
            for (j, block) in self.tile[..end].chunks_mut(BLOCK).enumerate() {
                let n = block.len().min(HEADER);
                block[..n].copy_from_slice(&header(first_block + j as u64)[..n]);
            }
            &self.tile[phase..end]
        }
    }

    /// The reading end: checks each read against the stream from where the last one
    /// ended, and remembers the first byte that differs.
    pub struct Verifier {
        body: Box<[u8; BLOCK]>,
        position: u64,
        first_mismatch: Option<u64>,
    }

    impl Default for Verifier {
        fn default() -> Self {
            Verifier::new()
        }
    }

    impl Verifier {
        /// A verifier expecting the stream from byte 0.
        pub fn new() -> Self {
            Verifier { body: body(), position: 0, first_mismatch: None }
        }

        /// Bytes checked so far.
        pub fn position(&self) -> u64 {
            self.position
        }

        /// The offset of the first byte that differed from the stream, if any.
        pub fn first_mismatch(&self) -> Option<u64> {
            self.first_mismatch
        }

        /// Checks `data` as the next bytes of the stream. After a mismatch it only counts:
        /// the rest is shifted or garbage, and the first difference is what matters.
        pub fn check(&mut self, mut data: &[u8]) {
            while !data.is_empty() && self.first_mismatch.is_none() {
                let phase = (self.position % BLOCK as u64) as usize;
                let n = data.len().min(BLOCK - phase);
                let (part, rest) = data.split_at(n);
                if let Some(k) = self.mismatch_in_block(phase, part) {
                    self.first_mismatch = Some(self.position + k as u64);
                }
                self.position += n as u64;
                data = rest;
            }
            self.position += data.len() as u64;
        }

        /// Where `part`, which starts at `phase` within the current block, first differs.
        fn mismatch_in_block(&self, phase: usize, part: &[u8]) -> Option<usize> {
            let end = phase + part.len();
            // `part` covers block bytes phase..end: the header's share, then the body's.
            let body_start = phase.max(HEADER).min(end);
            let (head, body) = part.split_at(body_start - phase);
            let header = header(self.position / BLOCK as u64);
            let expected_head = &header[phase.min(HEADER)..body_start.min(HEADER)];
            let expected_body = &self.body[body_start..end];
            if head != expected_head {
                head.iter().zip(expected_head).position(|(a, b)| a != b)
            } else if body != expected_body {
                body.iter().zip(expected_body).position(|(a, b)| a != b).map(|k| head.len() + k)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod pattern_tests {
    use super::pattern::{BLOCK, Source, Verifier};

    /// `len` bytes of the stream, produced in writes of `write` bytes.
    fn stream(len: usize, write: usize) -> Vec<u8> {
        let mut source = Source::new(write);
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let n = write.min(len - out.len());
            out.extend_from_slice(source.chunk(out.len() as u64, n));
        }
        out
    }

    /// Feeds `bytes` to a fresh verifier in reads of `read` bytes.
    fn verify(bytes: &[u8], read: usize) -> Option<u64> {
        let mut verifier = Verifier::new();
        for chunk in bytes.chunks(read) {
            verifier.check(chunk);
        }
        assert_eq!(verifier.position(), bytes.len() as u64);
        verifier.first_mismatch()
    }

    const LEN: usize = 64 * BLOCK + 123;

    #[test]
    fn the_stream_is_the_same_whatever_the_write_size_and_verifies_whatever_the_read_size() {
        let reference = stream(LEN, 65536);
        for write in [1, 7, 4096, 5000, 65536, LEN] {
            assert!(stream(LEN, write) == reference, "write size {write}");
        }
        for read in [1, 3, 8, 4095, 4096, 4097, 65536, LEN] {
            assert_eq!(verify(&reference, read), None, "read size {read}");
        }
        assert_eq!(&reference[..8], &0u64.to_le_bytes());
        assert_eq!(&reference[BLOCK..BLOCK + 8], &1u64.to_le_bytes());
        assert!(reference[8..BLOCK].iter().all(|b| *b != 0), "body bytes are never zero");
    }

    #[test]
    fn a_lost_chunk_is_caught_where_it_was_lost() {
        let intact = stream(LEN, 65536);
        // Whole blocks (the block numbers catch it), and odd lengths (the body does).
        for (at, len) in [(3 * BLOCK, BLOCK), (3 * BLOCK, 2 * BLOCK), (5000, BLOCK), (5000, 100), (10, 1)] {
            let mut bytes = intact.clone();
            bytes.drain(at..at + len);
            let found = verify(&bytes, 1000).unwrap_or_else(|| panic!("lost {len} at {at}: not caught"));
            assert!(
                found >= at as u64 && found <= (at + BLOCK) as u64,
                "lost {len} at {at}: found at {found}"
            );
        }
    }

    #[test]
    fn a_repeated_chunk_is_caught() {
        let intact = stream(LEN, 65536);
        for (at, len) in [(4 * BLOCK, BLOCK), (4 * BLOCK + 17, 4096), (9000, 333)] {
            let mut bytes = intact[..at + len].to_vec();
            bytes.extend_from_slice(&intact[at..]);
            assert!(verify(&bytes, 4096).is_some(), "repeated {len} at {at}");
        }
    }

    #[test]
    fn reordered_chunks_are_caught_even_when_whole_blocks_are_swapped() {
        let intact = stream(LEN, 65536);
        let mut bytes = intact.clone();
        let (a, b) = (2 * BLOCK, 6 * BLOCK);
        let first = intact[a..a + BLOCK].to_vec();
        bytes[a..a + BLOCK].copy_from_slice(&intact[b..b + BLOCK]);
        bytes[b..b + BLOCK].copy_from_slice(&first);
        assert_eq!(verify(&bytes, 65536), Some(a as u64), "the swapped block's number differs at once");
    }

    #[test]
    fn one_changed_byte_is_caught_at_its_offset() {
        let intact = stream(LEN, 65536);
        for at in [0, 7, 8, BLOCK - 1, 10 * BLOCK + 100, LEN - 1] {
            let mut bytes = intact.clone();
            bytes[at] ^= 0x40;
            assert_eq!(verify(&bytes, 1500), Some(at as u64), "byte {at}");
        }
        let short = &intact[..LEN - 1];
        assert_eq!(verify(short, 4096), None, "a short stream is intact so far: the byte count judges it");
    }
}
