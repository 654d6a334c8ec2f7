//! Packet capture: the wire layer between the application's writes and reads.
//!
//! A [`Capture`] opens a Linux packet socket (`AF_PACKET`) on an interface — `lo` for
//! loopback cases — before the case connects, reads frames through a memory-mapped
//! `TPACKET_V3` ring (module `ring`) on a thread of its own, keeps those whose TCP or UDP
//! port is one of the case's, and stops after the case has closed its sockets
//! ([`Capture::finish`]). Each frame is decoded with pnet's packet types ([`decode`]) into
//! our own small record, [`WirePacket`], and kept whole for the pcap file ([`pcap`]).
//!
//! **Packet times are the kernel's.** Every frame carries the kernel's receive time
//! (`CLOCK_REALTIME`), taken when the frame entered the receive path or was delivered to
//! the ring, never when the capture thread read it; it goes into the pcap file as it is,
//! and onto the case clock (the `Instant` the case times its writes and reads from) for
//! [`WirePacket::at_us`] (module `clock`). On loopback a segment is sent and received
//! inside the sender's `write()` call, so its time lies between the call and its return;
//! cases stamp a write when the call is made (see [`IoEvent::at_us`]), so a segment never
//! comes before the write that produced it.
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
//! [`IoEvent::at_us`]: crate::report::IoEvent::at_us

mod clock;
pub mod decode;
mod filter;
pub mod pcap;
mod ring;
pub mod stream;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;

use crate::privilege::Capability;
use crate::report::Artifact;
use crate::report::{CaptureObservation, CaptureStatus, WirePacket};

use clock::ClockLink;
pub use decode::{Decoded, decode_frame};
use ring::Ring;
pub use socklab_model::analysis::{StreamSegments, retransmitted_segments, stream_segments};

/// How long one wait for frames lasts before the thread looks at the stop flag again.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// A wall-clock step larger than this during a capture is reported with its packets.
const CLOCK_STEP_REPORTED_US: f64 = 100.0;

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
    /// Wall-clock time (`CLOCK_REALTIME`) the kernel received it, from the ring: the
    /// same time tcpdump would record.
    pub wall: SystemTime,
    /// `wall` on the case clock: microseconds since the case clock started.
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
    /// Whether the kernel dropped outgoing copies (`PACKET_IGNORE_OUTGOING`, on `lo`).
    pub outgoing_ignored: bool,
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
    /// How far the wall clock was stepped against the case clock during the capture, in
    /// microseconds, when more than 100 µs (packet times on the case clock may be off by
    /// up to that much; pcap times are the kernel's either way).
    pub wall_clock_step_us: Option<f64>,
}

impl Captured {
    /// The report observation, with `pcap` as the pcap file's path when one is written.
    pub fn observation(&self, pcap: Option<String>) -> CaptureObservation {
        let ports: Vec<String> = self.server_ports.iter().map(u16::to_string).collect();
        let how = if self.outgoing_ignored {
            "loopback's outgoing copies ignored with PACKET_IGNORE_OUTGOING"
        } else {
            "both directions, each frame once"
        };
        let mut detail = format!(
            "{}, port {}, {} packets ({how})",
            self.interface,
            ports.join(","),
            self.packets.len() as u64 + self.left_out
        );
        if self.kernel_drops > 0 {
            detail += &format!("; the kernel dropped {} frames", self.kernel_drops);
        }
        if self.left_out > 0 {
            detail +=
                &format!("; {} packets over the capture's limits are counted but not listed", self.left_out);
        }
        if let Some(step) = self.wall_clock_step_us {
            detail += &format!(
                "; the wall clock was stepped by {step:.0} µs during the capture, so packet times may be off by as much"
            );
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
        let path = crate::report::case_file(case_id, crate::report::CAPTURE_FILE);
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
        let ring = Ring::open(&config.interface, config.ignore_outgoing, &config.server_ports)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("socklab-capture".into())
            .spawn(move || read_frames(ring, &config, clock, &thread_stop))
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

/// The capture thread: reads until stopped and quiet, or until `max_duration`.
fn read_frames(mut ring: Ring, config: &CaptureConfig, clock: Instant, stop: &AtomicBool) -> Captured {
    let started = Instant::now();
    let link = ClockLink::now(clock);
    let mut captured = Captured {
        interface: config.interface.clone(),
        server_ports: config.server_ports.clone(),
        outgoing_ignored: config.ignore_outgoing,
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
        let read = ring.next_block(POLL_INTERVAL, |frame| {
            captured.frames_read += 1;
            let Some(decoded) = decode_frame(frame.bytes, &config.server_ports) else { return };
            last_match = Instant::now();
            if captured.packets.len() >= config.max_packets
                || frame_bytes + frame.bytes.len() > config.max_frame_bytes
            {
                captured.left_out += 1;
                return;
            }
            let at_us = link.case_us(frame.wall);
            frame_bytes += frame.bytes.len();
            captured.packets.push(numbering.record(&decoded, at_us));
            captured.frames.push(Frame { wall: frame.wall, at_us, bytes: frame.bytes.to_vec() });
        });
        match read {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let step = link.step_us(&ClockLink::now(clock));
    captured.wall_clock_step_us = (step.abs() > CLOCK_STEP_REPORTED_US).then_some(step);
    captured.kernel_drops = ring.drops();
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
