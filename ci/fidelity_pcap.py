#!/usr/bin/env python3
"""Compares a socklab report's captures with tcpdump's capture of the same loopback.

Usage: fidelity_pcap.py REPORT_DIR TCPDUMP_PCAP

For each case with a capture.pcap: every packet socklab recorded must be in tcpdump's
capture (same bytes) and the other way round for the case's ports; prints the largest and
median difference of their timestamps, and compares the case's `segments` metric (TCP
segments that carried the client's bytes for the first time) with the data segments
tcpdump saw from client to server, first transmissions only. Prints rows of a Markdown
table; exits 1 when a packet is missing from either side or a count differs.
"""

import json
import os
import struct
import sys

TOLERANCE_US = 100.0


def read_pcap(path):
    """[(time in ns, frame bytes)] of a pcap file, microsecond or nanosecond."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data, 0)[0]
    order, scale = {0xA1B2C3D4: ("<", 1000), 0xA1B23C4D: ("<", 1),
                    0xD4C3B2A1: (">", 1000), 0x4D3CB2A1: (">", 1)}[magic]
    linktype = struct.unpack_from(order + "I", data, 20)[0]
    if linktype != 1:
        sys.exit(f"fidelity_pcap.py: {path}: link type {linktype}, expected 1 (Ethernet)")
    frames, at = [], 24
    while at + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from(order + "IIII", data, at)
        frames.append((sec * 1_000_000_000 + frac * scale, data[at + 16:at + 16 + caplen]))
        at += 16 + caplen
    return frames


def tcp_fields(frame):
    """(src port, dst port, seq, payload length) of an Ethernet/IPv4/TCP frame, or None."""
    if frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack_from(">H", ip, 2)[0]
    tcp = ip[ihl:]
    src, dst, seq = struct.unpack_from(">HHI", tcp, 0)
    doff = (tcp[12] >> 4) * 4
    return src, dst, seq, total - ihl - doff


def main():
    report_dir, reference_path = sys.argv[1], sys.argv[2]
    report = json.load(open(os.path.join(report_dir, "report.json")))
    reference = read_pcap(reference_path)
    failed = False
    all_gaps = []
    rows = []
    for case in report["cases"]:
        capture = (case.get("observations") or {}).get("capture") or {}
        if not capture.get("pcap"):
            sys.exit(f"fidelity_pcap.py: case {case['id']} has no capture.pcap: {capture.get('detail')}")
        ours = read_pcap(os.path.join(report_dir, capture["pcap"]))
        ports = {tcp_fields(f)[0] for _, f in ours if tcp_fields(f)} | {tcp_fields(f)[1] for _, f in ours if tcp_fields(f)}
        theirs = [(t, f) for t, f in reference if tcp_fields(f) and tcp_fields(f)[0] in ports and tcp_fields(f)[1] in ports]
        unused = list(theirs)
        gaps = []
        for t, frame in ours:
            match = next((i for i, (_, g) in enumerate(unused) if g == frame), None)
            if match is None:
                print(f"fidelity_pcap.py: {case['id']}: a socklab packet is not in tcpdump's capture", file=sys.stderr)
                failed = True
                continue
            gaps.append(abs(t - unused.pop(match)[0]) / 1000.0)
        if unused:
            print(f"fidelity_pcap.py: {case['id']}: {len(unused)} tcpdump packets socklab did not record", file=sys.stderr)
            failed = True
        # The client is the side that did not listen: the server port is the SYN's destination.
        syn = next((f for _, f in theirs if tcp_fields(f)[3] == 0 and f[14 + (f[14] & 0x0F) * 4 + 13] & 0x02), None)
        if syn is None:
            sys.exit(f"fidelity_pcap.py: {case['id']}: no SYN of the case's connection in tcpdump's capture")
        server_port = tcp_fields(syn)[1]
        # The messages are the last `bytes` the client sent (a warm case sends its
        # request/reply rounds first): count the first transmissions that carry any of them.
        isn = tcp_fields(syn)[2]
        data = {}
        for _, f in theirs:
            src, dst, seq, length = tcp_fields(f)
            if dst == server_port and length > 0:
                data.setdefault((seq - isn) % 2**32, length)
        if not data:
            sys.exit(f"fidelity_pcap.py: {case['id']}: tcpdump saw no data from client to server")
        end = max(offset + length for offset, length in data.items())
        message_bytes = next((m["value"] for m in case["metrics"] if m["name"] == "bytes"), None)
        if message_bytes is None:
            sys.exit(f"fidelity_pcap.py: {case['id']}: the report has no `bytes` metric")
        first = sum(1 for offset, length in data.items() if offset + length > end - message_bytes)
        metric = next((m["value"] for m in case["metrics"] if m["name"] == "segments"), None)
        if metric != first:
            failed = True
        all_gaps.extend(gaps)
        rows.append((case["id"], metric, first, len(ours), len(theirs), gaps))
    for case_id, metric, first, n_ours, n_theirs, gaps in rows:
        note = "exact" if metric == first else "DIFFER"
        shown = "absent" if metric is None else f"{metric:g}"
        print(f"| segments, {case_id} | {shown} | {first} (tcpdump, client to server, first transmissions of the messages' bytes) | {note} |")
    gaps = sorted(all_gaps)
    median = gaps[len(gaps) // 2] if gaps else float("nan")
    worst = gaps[-1] if gaps else float("nan")
    print(f"| packet timestamps, {len(gaps)} packets in {len(rows)} cases | capture.pcap | tcpdump -i lo --time-stamp-precision nano | "
          f"max {worst:.3f} µs, median {median:.3f} µs apart (target: every packet within {TOLERANCE_US:.0f} µs) |")
    if not gaps or worst > TOLERANCE_US:
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
