//! The packet socket, read through a memory-mapped `TPACKET_V3` receive ring.
//!
//! **Why a ring.** The kernel writes each frame into the ring together with its time,
//! taken in the kernel when the frame arrived — never when the capture thread gets round
//! to reading it. The earlier capture read frames with `recvfrom` and asked for the time
//! afterwards with `SIOCGSTAMPNS`; a frame the kernel had not stamped (loopback TCP
//! frames are not, until receive timestamping is switched on system-wide, a moment
//! after the first `SIOCGSTAMPNS` asks for it) got the time of the ioctl, so packets
//! came out up to milliseconds late. tcpdump (libpcap) reads the same kind of ring.
//!
//! **Which time.** The ring gives each frame the software receive stamp the kernel took
//! as it entered the receive path, when there is one (some socket on the system asked
//! for receive timestamps), else the time the kernel delivered it to the ring
//! (`ktime_get_real` in `tpacket_rcv`); both are `CLOCK_REALTIME`. Loopback TCP frames
//! always get the delivery time: they carry the sender's departure time (a monotonic
//! stamp) instead of a receive stamp, which the ring ignores. On loopback delivery
//! happens in the receive softirq that runs inside the sender's system call, so the
//! time lies between that call and its return. tcpdump reads the same ring and records
//! the same times, to within the microsecond its own delivery comes before or after.
//!
//! **Layout.** The ring is `BLOCK_COUNT` blocks of `BLOCK_BYTES`. The kernel fills a block
//! with frames, each a `tpacket3_hdr` followed by the frame at `tp_mac`, and hands it to
//! user space (`TP_STATUS_USER`) when it is full or `BLOCK_TIMEOUT_MS` after its first
//! frame; the reader walks it and hands it back (`TP_STATUS_KERNEL`), in order. A frame
//! larger than a block would be cut; loopback's largest (a 64 KiB GSO segment and its
//! headers) fits with room to spare.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use super::CaptureError;
use super::filter::port_filter;

/// Bytes per ring block: a multiple of any page size, and above the largest loopback
/// frame (65 535 bytes of IP packet, 14 of Ethernet header) with its ring header.
const BLOCK_BYTES: usize = 128 << 10;
/// Blocks in the ring: 8 MiB in all, room for a burst while the capture thread is
/// descheduled.
const BLOCK_COUNT: usize = 64;
/// The nominal frame size `TPACKET_V3` wants declared; frames are packed by their real
/// size, so it only has to divide the block and be aligned.
const FRAME_BYTES: usize = 2048;
/// A block with frames in it goes to user space at the latest this long after its first
/// frame, so a quiet connection's last packets are not held back.
const BLOCK_TIMEOUT_MS: u32 = 4;

/// One frame as the kernel put it in the ring.
#[derive(Debug, Clone, Copy)]
pub(super) struct RingFrame<'a> {
    /// The kernel's receive time (`CLOCK_REALTIME`).
    pub wall: SystemTime,
    /// The frame, link-layer header first (cut only if longer than a block).
    pub bytes: &'a [u8],
}

/// An `AF_PACKET` socket bound to one interface, with its receive ring mapped.
pub(super) struct Ring {
    socket: OwnedFd,
    map: NonNull<u8>,
    next_block: usize,
}

// SAFETY: the mapping belongs to this value alone (nothing else holds the pointer) and
// is only touched through `&mut self`, so moving it to the capture thread is sound.
unsafe impl Send for Ring {}

impl Ring {
    /// Opens a packet socket on `interface` with its ring, loopback's outgoing copies
    /// dropped by the kernel when `ignore_outgoing` is set.
    ///
    /// The socket is opened for no protocol and bound to every protocol (`ETH_P_ALL`) on
    /// `interface` only at the end, so no frame of another interface is ever queued; with
    /// `ports`, a kernel filter ([`port_filter`]) keeps only TCP/UDP packets to or from
    /// them, so other traffic neither fills the ring nor counts as its drops.
    ///
    /// # Errors
    /// [`CaptureError::NoInterface`] for an unknown interface,
    /// [`CaptureError::NoIgnoreOutgoing`] when the kernel lacks `PACKET_IGNORE_OUTGOING`,
    /// [`CaptureError::Io`] when a socket call fails.
    pub fn open(interface: &str, ignore_outgoing: bool, ports: &[u16]) -> Result<Ring, CaptureError> {
        let io = |action| {
            let interface = interface.to_string();
            move |error| CaptureError::Io { action, interface, error }
        };
        let index = interface_index(interface)?;
        // SAFETY: plain socket(2); the result is checked before it is wrapped.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io("open packet socket")(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(raw) };
        if ignore_outgoing {
            set_option(&socket, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32)
                .map_err(CaptureError::NoIgnoreOutgoing)?;
        }
        if !ports.is_empty() {
            // Before the bind: from the first frame on, the kernel queues only the case's.
            let mut program = port_filter(ports);
            let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_mut_ptr() };
            set_option(&socket, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
                .map_err(io("attach the port filter"))?;
        }
        set_option(
            &socket,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &(libc::tpacket_versions::TPACKET_V3 as i32),
        )
        .map_err(io("select TPACKET_V3"))?;
        let request = libc::tpacket_req3 {
            tp_block_size: BLOCK_BYTES as u32,
            tp_block_nr: BLOCK_COUNT as u32,
            tp_frame_size: FRAME_BYTES as u32,
            tp_frame_nr: (BLOCK_BYTES / FRAME_BYTES * BLOCK_COUNT) as u32,
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_option(&socket, libc::SOL_PACKET, libc::PACKET_RX_RING, &request)
            .map_err(io("set up the receive ring"))?;
        // SAFETY: maps the ring the kernel just allocated for this socket, at its size;
        // the result is checked before use and unmapped in `Drop`.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BLOCK_BYTES * BLOCK_COUNT,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                socket.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io("map the receive ring")(io::Error::last_os_error()));
        }
        let map = NonNull::new(map.cast::<u8>())
            .ok_or_else(|| io("map the receive ring")(io::ErrorKind::Other.into()))?;
        let ring = Ring { socket, map, next_block: 0 };
        // SAFETY: a sockaddr_ll is plain data; all-zero is a valid value to fill in.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        address.sll_ifindex = index;
        // SAFETY: `address` is a live sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                ring.socket.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io("bind packet socket")(io::Error::last_os_error()));
        }
        Ok(ring)
    }

    /// Waits up to `timeout` for the next block of frames, calls `each` on every frame
    /// in it, in arrival order, and hands the block back to the kernel. Returns how many
    /// frames there were (0 when none came in time).
    ///
    /// # Errors
    /// When `poll` fails (`Interrupted` included: call again).
    pub fn next_block(
        &mut self,
        timeout: Duration,
        mut each: impl FnMut(RingFrame<'_>),
    ) -> io::Result<usize> {
        if !self.block_ready() {
            let mut poll = libc::pollfd { fd: self.socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
            // SAFETY: one live pollfd, count 1.
            if unsafe { libc::poll(&mut poll, 1, millis) } < 0 {
                return Err(io::Error::last_os_error());
            }
            if !self.block_ready() {
                return Ok(0);
            }
        }
        let block = self.block_start();
        // SAFETY: the block is in user space's hands (TP_STATUS_USER, read with Acquire
        // ordering after the kernel's write barrier), so the kernel does not write it
        // until it is handed back below. Every offset is checked against the block.
        let count = unsafe {
            let header = &(*block.cast::<libc::tpacket_block_desc>()).hdr.bh1;
            let mut offset = header.offset_to_first_pkt as usize;
            let mut count = 0;
            for _ in 0..header.num_pkts {
                if offset + std::mem::size_of::<libc::tpacket3_hdr>() > BLOCK_BYTES {
                    break;
                }
                let frame = &*block.add(offset).cast::<libc::tpacket3_hdr>();
                let start = offset + usize::from(frame.tp_mac);
                let len = frame.tp_snaplen as usize;
                if start + len > BLOCK_BYTES {
                    break;
                }
                let wall = SystemTime::UNIX_EPOCH
                    + Duration::new(u64::from(frame.tp_sec), frame.tp_nsec.min(999_999_999));
                each(RingFrame { wall, bytes: std::slice::from_raw_parts(block.add(start), len) });
                count += 1;
                if frame.tp_next_offset == 0 {
                    break;
                }
                offset += frame.tp_next_offset as usize;
            }
            count
        };
        self.block_status().store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.next_block = (self.next_block + 1) % BLOCK_COUNT;
        Ok(count)
    }

    /// Frames the kernel dropped since the last call (`PACKET_STATISTICS` resets on
    /// read): the ring was full.
    pub fn drops(&self) -> u64 {
        let mut stats = libc::tpacket_stats_v3 { tp_packets: 0, tp_drops: 0, tp_freeze_q_cnt: 0 };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `stats` is a live tpacket_stats_v3 and `len` its size.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut stats as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc == 0 { u64::from(stats.tp_drops) } else { 0 }
    }

    fn block_start(&self) -> *mut u8 {
        // SAFETY: `next_block < BLOCK_COUNT`, so the offset is inside the mapping.
        unsafe { self.map.as_ptr().add(self.next_block * BLOCK_BYTES) }
    }

    /// The status word of the next block, which the kernel and this reader hand back
    /// and forth.
    fn block_status(&self) -> &AtomicU32 {
        let block = self.block_start().cast::<libc::tpacket_block_desc>();
        // SAFETY: the word is inside the live mapping, aligned (blocks are page-aligned,
        // the field at offset 8), and only ever accessed atomically from this side.
        unsafe { AtomicU32::from_ptr(&raw mut (*block).hdr.bh1.block_status) }
    }

    fn block_ready(&self) -> bool {
        self.block_status().load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`; nothing refers to it after.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), BLOCK_BYTES * BLOCK_COUNT);
        }
    }
}

/// The index of interface `name`.
fn interface_index(name: &str) -> Result<i32, CaptureError> {
    let missing = || CaptureError::NoInterface(name.to_string());
    let c_name = CString::new(name).map_err(|_| missing())?;
    // SAFETY: `c_name` is a live NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 { Err(missing()) } else { i32::try_from(index).map_err(|_| missing()) }
}

fn set_option<T>(socket: &OwnedFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live T and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}
