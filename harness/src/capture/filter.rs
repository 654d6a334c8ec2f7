//! A classic BPF program that keeps only the case's packets: TCP or UDP over IPv4 or
//! IPv6 (in the Ethernet framing `lo` uses) whose source or destination port is one of
//! the case's. Attached to the packet socket before it is bound, it makes the kernel
//! queue nothing else, so a busy machine's other loopback traffic can neither fill the
//! ring nor show up in the case's drop count (`PACKET_STATISTICS` counts only packets the
//! filter accepted).

/// One instruction, as `struct sock_filter` lays it out.
pub type Instruction = libc::sock_filter;

// Opcodes (linux/filter.h, linux/bpf_common.h).
const LD_H_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
const LD_H_IND: u16 = 0x48; // BPF_LD | BPF_H | BPF_IND
const LDX_B_MSH: u16 = 0xb1; // BPF_LDX | BPF_B | BPF_MSH: X = 4 * (pkt[k] & 0xf)
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

const ETHERTYPE_IPV4: u32 = 0x0800;
const ETHERTYPE_IPV6: u32 = 0x86dd;
const TCP: u32 = 6;
const UDP: u32 = 17;
/// Bytes of each accepted packet handed to the ring: all of them.
const SNAPLEN: u32 = 0x40000;

/// A jump target while the program is built: resolved to an offset at the end.
#[derive(Clone, Copy)]
enum To {
    Next,
    At(usize),
    Accept,
    Drop,
}

/// The program as built: (opcode, jump if true, jump if false, constant).
type Symbolic = Vec<(u16, To, To, u32)>;

fn op(program: &mut Symbolic, code: u16, jt: To, jf: To, k: u32) -> usize {
    program.push((code, jt, jf, k));
    program.len() - 1
}

/// Compares the loaded port with each of `ports`: a match accepts; after the last, a
/// miss goes on (`then_next`) or drops.
fn match_ports(program: &mut Symbolic, ports: &[u16], then_next: bool) {
    for (i, port) in ports.iter().enumerate() {
        let miss = if i + 1 < ports.len() || then_next { To::Next } else { To::Drop };
        op(program, JEQ_K, To::Accept, miss, u32::from(*port));
    }
}

/// Builds the program for `ports` (at least one).
pub fn port_filter(ports: &[u16]) -> Vec<Instruction> {
    let p = &mut Symbolic::new();
    // Ethernet type: IPv6 branches away (its target is patched below), IPv4 goes on.
    op(p, LD_H_ABS, To::Next, To::Next, 12);
    let to_ipv6 = op(p, JEQ_K, To::Drop, To::Next, ETHERTYPE_IPV6);
    op(p, JEQ_K, To::Next, To::Drop, ETHERTYPE_IPV4);
    op(p, LD_B_ABS, To::Next, To::Next, 14 + 9); // IPv4 protocol
    let tcp4 = op(p, JEQ_K, To::Drop, To::Next, TCP);
    op(p, JEQ_K, To::Next, To::Drop, UDP);
    p[tcp4].1 = To::At(p.len());
    op(p, LD_H_ABS, To::Next, To::Next, 14 + 6); // flags and fragment offset
    op(p, JSET_K, To::Drop, To::Next, 0x1fff); // a later fragment carries no ports
    op(p, LDX_B_MSH, To::Next, To::Next, 14); // X = IPv4 header length
    op(p, LD_H_IND, To::Next, To::Next, 14); // source port
    match_ports(p, ports, true);
    op(p, LD_H_IND, To::Next, To::Next, 16); // destination port
    match_ports(p, ports, false);
    p[to_ipv6].1 = To::At(p.len());
    op(p, LD_B_ABS, To::Next, To::Next, 14 + 6); // IPv6 next header (no extension headers on lo)
    let tcp6 = op(p, JEQ_K, To::Drop, To::Next, TCP);
    op(p, JEQ_K, To::Next, To::Drop, UDP);
    p[tcp6].1 = To::At(p.len());
    op(p, LD_H_ABS, To::Next, To::Next, 14 + 40);
    match_ports(p, ports, true);
    op(p, LD_H_ABS, To::Next, To::Next, 14 + 42);
    match_ports(p, ports, false);
    let (accept, drop) = (p.len(), p.len() + 1);
    let offset = |from: usize, to: To| -> u8 {
        let target = match to {
            To::Next => from + 1,
            To::At(i) => i,
            To::Accept => accept,
            To::Drop => drop,
        };
        // Programs here are a few dozen instructions: every jump fits a byte.
        u8::try_from(target - from - 1).unwrap_or(u8::MAX)
    };
    let mut out: Vec<Instruction> = p
        .iter()
        .enumerate()
        .map(|(i, &(code, jt, jf, k))| Instruction { code, jt: offset(i, jt), jf: offset(i, jf), k })
        .collect();
    out.push(Instruction { code: RET_K, jt: 0, jf: 0, k: SNAPLEN });
    out.push(Instruction { code: RET_K, jt: 0, jf: 0, k: 0 });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small interpreter for the instructions the filter uses, to test it on frames.
    fn run(program: &[Instruction], packet: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |i: usize| u32::from(*packet.get(i).unwrap_or(&0));
        let half = |i: usize| (byte(i) << 8) | byte(i + 1);
        loop {
            let ins = program[pc];
            pc += 1;
            match ins.code {
                LD_H_ABS => a = half(ins.k as usize),
                LD_B_ABS => a = byte(ins.k as usize),
                LD_H_IND => a = half(x as usize + ins.k as usize),
                LDX_B_MSH => x = 4 * (byte(ins.k as usize) & 0xf),
                JEQ_K => pc += usize::from(if a == ins.k { ins.jt } else { ins.jf }),
                JSET_K => pc += usize::from(if a & ins.k != 0 { ins.jt } else { ins.jf }),
                RET_K => return ins.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn ipv4_fragment(proto: u8, src: u16, dst: u16, fragment: u16) -> Vec<u8> {
        let mut frame = vec![0u8; 14 + 20 + 8];
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        frame[14] = 0x45;
        frame[14 + 6..14 + 8].copy_from_slice(&fragment.to_be_bytes());
        frame[14 + 9] = proto;
        frame[34..36].copy_from_slice(&src.to_be_bytes());
        frame[36..38].copy_from_slice(&dst.to_be_bytes());
        frame
    }

    fn ipv4(proto: u8, src: u16, dst: u16) -> Vec<u8> {
        ipv4_fragment(proto, src, dst, 0)
    }

    fn ipv6(next: u8, src: u16, dst: u16) -> Vec<u8> {
        let mut frame = vec![0u8; 14 + 40 + 8];
        frame[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        frame[14 + 6] = next;
        frame[54..56].copy_from_slice(&src.to_be_bytes());
        frame[56..58].copy_from_slice(&dst.to_be_bytes());
        frame
    }

    #[test]
    fn keeps_the_case_ports_and_nothing_else() {
        let program = port_filter(&[40312, 5000]);
        assert!(program.len() < 60);
        let kept = |frame: &[u8]| run(&program, frame) > 0;
        assert!(kept(&ipv4(6, 40312, 55555)), "tcp from the server port");
        assert!(kept(&ipv4(6, 55555, 40312)), "tcp to the server port");
        assert!(kept(&ipv4(17, 55555, 5000)), "udp, second port");
        assert!(kept(&ipv6(6, 55555, 5000)), "tcp over IPv6");
        assert!(!kept(&ipv4(6, 55555, 443)), "another connection");
        assert!(!kept(&ipv4(1, 40312, 40312)), "not TCP or UDP");
        assert!(!kept(&ipv4_fragment(6, 40312, 1, 0x0005)), "a later fragment");
        assert!(!kept(&ipv6(17, 1, 2)), "IPv6, other ports");
        let mut arp = ipv4(6, 40312, 1);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(!kept(&arp), "not IP");
    }
}
