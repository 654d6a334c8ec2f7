//! Socket facts and settings the kernel knows and the application usually does not:
//! queue lengths, socket options, kernel counters, network namespaces.

mod buffers;
mod netns;
mod netstat;
mod queue;
mod snmp;
mod tcp;
mod tcp_table;
mod udp;

pub use buffers::{
    BufferSize, RMEM_MAX_PATH, WMEM_MAX_PATH, read_sysctl_u64, recv_buffer, rmem_max, send_buffer,
    set_recv_buffer, set_send_buffer, wmem_max,
};
pub use netns::{NetnsError, NetnsMode, PrivateNetns};
pub use netstat::{ListenCounters, THREAD_NETSTAT_PATH, parse_listen, read_listen_counters};
pub use queue::bytes_queued;
pub use snmp::{
    SnmpError, THREAD_SNMP_PATH, UdpCounters, parse_udp, read_udp_counters, read_udp_counters_from,
    snmp_counter,
};
pub use tcp::{set_cork, set_quickack, tcp_maxseg};
pub use tcp_table::{TcpSocketEntry, TcpState, parse_table, tcp_sockets};
pub use udp::{Datagram, MAX_UDP_PAYLOAD_V4, enable_rxq_ovfl, errno_name, error_name, recv_datagram};
