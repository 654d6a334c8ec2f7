//! Packet capture: the wire layer between the application's writes and reads.
//!
//! A [`Capture`] opens a Linux packet socket (`AF_PACKET`, through pnet's datalink
//! channel) on an interface — `lo` for loopback cases — before the case connects, reads
//! frames on a thread of its own, keeps those whose TCP or UDP port is one of the case's,
//! and stops after the case has closed its sockets ([`Capture::finish`]). Each frame is
//! decoded with pnet's packet types ([`decode`]) into our own small record,
//! [`WirePacket`], and kept whole for the pcap file ([`pcap`]).
//!
//! **Loopback shows every frame twice.** A packet socket on `lo` sees each frame once
//! as it leaves (`PACKET_OUTGOING`) and once as it comes back in (`PACKET_HOST`). The
//! capture sets `PACKET_IGNORE_OUTGOING` (Linux 4.20+) on the socket, so the kernel
//! delivers only the incoming copy and counts match the true segment count; where the
//! option is missing the capture refuses to start rather than guess.
//!
//! Capture needs `CAP_NET_RAW`. Without it [`Capture::start`] fails with
//! [`CaptureError::Unprivileged`], whose message is the line reports show, and the case
//! runs on ([`CaptureObservation::unavailable`]).
//!
//! [`CaptureObservation::unavailable`]: crate::report::CaptureObservation::unavailable

pub mod decode;
pub mod pcap;
pub mod stream;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use pnet_datalink::{Channel, Config, DataLinkReceiver, NetworkInterface};
use thiserror::Error;

use crate::privilege::Capability;
use crate::report::{CaptureObservation, CaptureStatus, WirePacket};
use crate::scenario::Artifact;

pub use decode::{Decoded, decode_frame};
pub use stream::{StreamSegments, stream_segments};

/// Frames longer than this are cut (loopback's MTU is 65536; headers add 14 + 60 + 60).
const READ_BUFFER_BYTES: usize = 65536 + 256;
/// How long one read waits before the thread looks at the stop flag again.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Kernel buffer of the packet socket: room for a burst while the thread is descheduled.
const SOCKET_BUFFER_BYTES: usize = 8 << 20;

/// What to capture and how much.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Interface name. Default `lo`.
    pub interface: String,
    /// Ports of the listening ("server") side; a packet whose source or destination port
    /// is one of them is kept, and its direction follows from which end it is.
    pub server_ports: Vec<u16>,
    /// After [`Capture::finish`] is called, keep reading until no matching frame has
    /// come for this long, so the last FIN/ACK exchange is in. Default 20 ms.
    pub linger: Duration,
    /// Upper bound on the whole capture, whatever happens. Default 120 s.
    pub max_duration: Duration,
    /// Packets kept at most (records and pcap frames). Default 100 000.
    pub max_packets: usize,
    /// Frame bytes kept for the pcap at most. Default 64 MiB.
    pub max_frame_bytes: usize,
    /// Ask the kernel not to deliver loopback's outgoing copy of each frame
    /// (`PACKET_IGNORE_OUTGOING`). Default true; false sees every frame twice, which only
    /// the dedupe test wants.
    pub ignore_outgoing: bool,
}

impl CaptureConfig {
    /// Loopback capture of the connections to `server_port`.
    pub fn loopback(server_port: u16) -> Self {
        CaptureConfig {
            interface: "lo".to_string(),
            server_ports: vec![server_port],
            linger: Duration::from_millis(20),
            max_duration: Duration::from_secs(120),
            max_packets: 100_000,
            max_frame_bytes: 64 << 20,
            ignore_outgoing: true,
        }
    }
}

/// Why capture could not start.
///
/// Messages include their cause, so `source()` is `None`: a chain printer such as
/// anyhow's `{:#}` shows each cause once.
#[derive(Debug, Error)]
pub enum CaptureError {
    /// The process lacks `CAP_NET_RAW`.
    #[error("{}", Capability::NetRaw.missing_reason())]
    Unprivileged,
    /// No interface of that name.
    #[error("no network interface `{0}`")]
    NoInterface(String),
    /// The kernel cannot drop loopback's outgoing copies (`PACKET_IGNORE_OUTGOING`
    /// needs Linux 4.20+), so counts would be doubled.
    #[error("the kernel lacks PACKET_IGNORE_OUTGOING (Linux 4.20+): {0}")]
    NoIgnoreOutgoing(io::Error),
    /// A socket call failed.
    #[error("{action} on {interface}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The interface.
        interface: String,
        /// Why.
        error: io::Error,
    },
}

/// One frame as captured: wall-clock time (for pcap), case time, the bytes.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Wall-clock time the kernel received it (`SIOCGSTAMPNS`), or when the capture
    /// thread read it where the kernel gives no time.
    pub wall: SystemTime,
    /// Microseconds since the case clock started.
    pub at_us: f64,
    /// The frame, Ethernet header first (loopback has one with zero addresses).
    pub bytes: Vec<u8>,
}

/// What a finished capture holds.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// Interface it ran on.
    pub interface: String,
    /// Server ports it filtered on.
    pub server_ports: Vec<u16>,
    /// Matching packets, decoded, in capture order.
    pub packets: Vec<WirePacket>,
    /// The same packets' frames, for the pcap file.
    pub frames: Vec<Frame>,
    /// Matching packets not kept because a limit was reached.
    pub left_out: u64,
    /// Frames the kernel dropped (`PACKET_STATISTICS`), any port.
    pub kernel_drops: u64,
    /// Every frame read, any port.
    pub frames_read: u64,
}

impl Captured {
    /// The report observation, with `pcap` as the pcap file's path when one is written.
    pub fn observation(&self, pcap: Option<String>) -> CaptureObservation {
        let ports: Vec<String> = self.server_ports.iter().map(u16::to_string).collect();
        let mut detail = format!(
            "{}, port {}, {} packets (loopback's outgoing copies ignored with PACKET_IGNORE_OUTGOING)",
            self.interface,
            ports.join(","),
            self.packets.len() as u64 + self.left_out
        );
        if self.kernel_drops > 0 {
            detail += &format!("; the kernel dropped {} frames", self.kernel_drops);
        }
        CaptureObservation {
            status: CaptureStatus::Captured,
            detail,
            packets: self.packets.clone(),
            packets_left_out: self.left_out,
            kernel_drops: self.kernel_drops,
            pcap,
        }
    }

    /// The observation plus the pcap file as an artifact of case `case_id`
    /// (`cases/<case>/capture.pcap`). When the pcap cannot be built the observation says
    /// so and no artifact is returned.
    pub fn into_report_parts(self, case_id: &str) -> (CaptureObservation, Option<Artifact>) {
        let path = crate::report::case_file(case_id, "capture.pcap");
        match pcap::to_pcap(&self.frames) {
            Ok(bytes) => (self.observation(Some(path.clone())), Some(Artifact { path, bytes })),
            Err(e) => {
                let mut observation = self.observation(None);
                observation.detail += &format!("; no pcap file: {e}");
                (observation, None)
            }
        }
    }
}

/// A running capture; see the module docs.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Captured>>,
}

impl Capture {
    /// Opens the packet socket and starts reading. Frames that arrive from now on are
    /// captured, so call it before the case connects. `clock` is the case clock packet
    /// times are measured from.
    ///
    /// # Errors
    /// [`CaptureError::Unprivileged`] without `CAP_NET_RAW`; the others when the
    /// interface or socket cannot be set up.
    pub fn start(config: CaptureConfig, clock: Instant) -> Result<Capture, CaptureError> {
        if !Capability::NetRaw.held() {
            return Err(CaptureError::Unprivileged);
        }
        let interface = find_interface(&config.interface)?;
        let socket = packet_socket(&config.interface, config.ignore_outgoing)?;
        let fd = socket.as_raw_fd();
        let pnet_config = Config {
            read_buffer_size: READ_BUFFER_BYTES,
            read_timeout: Some(POLL_INTERVAL),
            socket_fd: Some(fd),
            promiscuous: false,
            ..Config::default()
        };
        // pnet owns the descriptor from here on and closes it with the channel.
        std::mem::forget(socket);
        let receiver = match pnet_datalink::channel(&interface, pnet_config) {
            Ok(Channel::Ethernet(_sender, receiver)) => receiver,
            Ok(_) => unreachable!("linux datalink channels are Ethernet"),
            Err(error) => {
                return Err(CaptureError::Io {
                    action: "bind packet socket",
                    interface: config.interface,
                    error,
                });
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("socklab-capture".into())
            .spawn(move || read_frames(receiver, fd, &config, clock, &thread_stop))
            .map_err(|error| CaptureError::Io {
                action: "start capture thread",
                interface: String::new(),
                error,
            })?;
        Ok(Capture { stop, thread: Some(thread) })
    }

    /// Stops after the capture has been quiet for its linger time (bounded by
    /// `max_duration`) and returns what it captured. Blocks for about the linger time:
    /// from async code call it through `tokio::task::spawn_blocking` or accept a short
    /// block at the very end of a case.
    pub fn finish(mut self) -> Captured {
        self.stop.store(true, Ordering::Release);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // A case that failed or timed out: let the thread end on its own.
        self.stop.store(true, Ordering::Release);
    }
}

fn find_interface(name: &str) -> Result<NetworkInterface, CaptureError> {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| CaptureError::NoInterface(name.to_string()))
}

/// An `AF_PACKET` raw socket for every protocol, with outgoing copies ignored and a
/// large buffer.
fn packet_socket(interface: &str, ignore_outgoing: bool) -> Result<OwnedFd, CaptureError> {
    let io = |action| {
        let interface = interface.to_string();
        move |error| CaptureError::Io { action, interface, error }
    };
    let protocol = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the result is checked before it is wrapped.
    let raw =
        unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(protocol)) };
    if raw < 0 {
        return Err(io("open packet socket")(io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    if ignore_outgoing {
        set_int_option(&socket, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)
            .map_err(CaptureError::NoIgnoreOutgoing)?;
    }
    // A failure here only makes drops more likely; PACKET_STATISTICS reports them.
    let _ = set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, SOCKET_BUFFER_BYTES as i32)
        .or_else(|_| set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUF, SOCKET_BUFFER_BYTES as i32));
    Ok(socket)
}

fn set_int_option(socket: &OwnedFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the option value is a live c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// `SIOCGSTAMPNS` (`linux/sockios.h`, the `_OLD` number with a native `timespec` on
/// 64-bit and the one every kernel since 2.6.22 answers).
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;

/// The kernel's receive time of the last frame read from `fd`: taken when the frame
/// reached the packet socket, so it does not include the capture thread's own delay.
fn kernel_timestamp(fd: i32) -> Option<SystemTime> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: SIOCGSTAMPNS writes one timespec into the live `ts`.
    let rc = unsafe { libc::ioctl(fd, SIOCGSTAMPNS as _, &mut ts as *mut libc::timespec) };
    if rc != 0 || ts.tv_sec <= 0 {
        return None;
    }
    let since_epoch = Duration::new(u64::try_from(ts.tv_sec).ok()?, u32::try_from(ts.tv_nsec).ok()?);
    Some(SystemTime::UNIX_EPOCH + since_epoch)
}

/// Frames the kernel dropped since the last call (`PACKET_STATISTICS` resets on read).
fn kernel_drops(fd: i32) -> u64 {
    let mut stats = libc::tpacket_stats { tp_packets: 0, tp_drops: 0 };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `stats` is a live tpacket_stats and `len` its size; `fd` is owned by the
    // receiver, which is alive while this thread runs.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if rc == 0 { u64::from(stats.tp_drops) } else { 0 }
}

/// The capture thread: reads until stopped and quiet, or until `max_duration`.
fn read_frames(
    mut receiver: Box<dyn DataLinkReceiver>,
    fd: i32,
    config: &CaptureConfig,
    clock: Instant,
    stop: &AtomicBool,
) -> Captured {
    let started = Instant::now();
    let wall_at_start = SystemTime::now();
    let mut captured = Captured {
        interface: config.interface.clone(),
        server_ports: config.server_ports.clone(),
        ..Captured::default()
    };
    let mut numbering = stream::Numbering::default();
    let mut frame_bytes = 0usize;
    let mut last_match = Instant::now();
    let mut stop_seen: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now.duration_since(started) >= config.max_duration {
            break;
        }
        if stop_seen.is_none() && stop.load(Ordering::Acquire) {
            stop_seen = Some(now);
        }
        if let Some(at) = stop_seen {
            let quiet_since = last_match.max(at);
            // Linger after the stop, but never longer than 50 linger periods in all.
            if now.duration_since(quiet_since) >= config.linger
                || now.duration_since(at) >= config.linger * 50
            {
                break;
            }
        }
        let frame = match receiver.next() {
            Ok(frame) => frame,
            Err(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::Interrupted => {
                continue;
            }
            Err(_) => break,
        };
        captured.frames_read += 1;
        let Some(decoded) = decode_frame(frame, &config.server_ports) else { continue };
        last_match = Instant::now();
        if captured.packets.len() >= config.max_packets || frame_bytes + frame.len() > config.max_frame_bytes
        {
            captured.left_out += 1;
            continue;
        }
        // Kernel time when there is one (the thread may read a frame a while after it
        // arrived), placed on the case clock through the wall clock read at the start.
        let wall = kernel_timestamp(fd).unwrap_or_else(SystemTime::now);
        let since_start = match wall.duration_since(wall_at_start) {
            Ok(later) => started.saturating_duration_since(clock).as_secs_f64() + later.as_secs_f64(),
            Err(earlier) => {
                started.saturating_duration_since(clock).as_secs_f64() - earlier.duration().as_secs_f64()
            }
        };
        let at_us = since_start.max(0.0) * 1e6;
        frame_bytes += frame.len();
        captured.packets.push(numbering.record(&decoded, at_us));
        captured.frames.push(Frame { wall, at_us, bytes: frame.to_vec() });
    }
    captured.kernel_drops = kernel_drops(fd);
    captured
}

/// Capture for one case that degrades instead of failing: when capture cannot start the
/// case runs on and its report says why (`capture: unavailable — needs CAP_NET_RAW ...`).
pub enum CaseCapture {
    /// Capturing.
    Running(Capture),
    /// Not capturing, for this reason.
    Unavailable(String),
}

/// What a case's capture produced: the report observation, the pcap artifact, and the
/// packets for the scenario's own analysis (empty when capture was unavailable).
pub struct CaseCaptureResult {
    /// For `observations.capture`.
    pub observation: CaptureObservation,
    /// For `CaseOutcome::artifacts`.
    pub artifact: Option<Artifact>,
    /// The packets, when capture ran.
    pub packets: Option<Vec<WirePacket>>,
}

impl CaseCapture {
    /// Starts capturing, or records why not.
    pub fn start(config: CaptureConfig, clock: Instant) -> Self {
        match Capture::start(config, clock) {
            Ok(capture) => CaseCapture::Running(capture),
            Err(e) => CaseCapture::Unavailable(e.to_string()),
        }
    }

    /// Stops capturing (off the async threads: stopping waits for the linger time) and
    /// returns the report parts for case `case_id`.
    pub async fn finish(self, case_id: &str) -> CaseCaptureResult {
        let capture = match self {
            CaseCapture::Unavailable(reason) => {
                return CaseCaptureResult {
                    observation: CaptureObservation::unavailable(reason),
                    artifact: None,
                    packets: None,
                };
            }
            CaseCapture::Running(capture) => capture,
        };
        let captured = match tokio::task::spawn_blocking(move || capture.finish()).await {
            Ok(captured) => captured,
            Err(e) => {
                return CaseCaptureResult {
                    observation: CaptureObservation::unavailable(format!("the capture thread failed: {e}")),
                    artifact: None,
                    packets: None,
                };
            }
        };
        let packets = captured.packets.clone();
        let (observation, artifact) = captured.into_report_parts(case_id);
        CaseCaptureResult { observation, artifact, packets: Some(packets) }
    }
}
