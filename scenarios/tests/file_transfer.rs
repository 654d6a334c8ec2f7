//! `file-transfer` over real loopback TCP: the JSON header framing, and where bytes go
//! missing.

mod common;

use socklab_harness::report::{CaseResult, CaseStatus};
use socklab_scenarios::file_transfer::{Header, encode_header};

use common::metric;

fn run(sets: &[&str]) -> Vec<CaseResult> {
    common::run("file-transfer", sets)
}

#[test]
fn the_header_is_what_python_struct_pack_i_and_json_dumps_send() {
    let header = Header { file_name: "a.txt".into(), file_desc: "d".into(), file_size: 5 };
    let bytes = encode_header(&header);
    let json = br#"{"file_name":"a.txt","file_desc":"d","file_size":5}"#;
    // struct.pack('i', 51): native order, little endian on x86.
    assert_eq!(&bytes[..4], &(json.len() as i32).to_ne_bytes());
    if cfg!(target_endian = "little") {
        assert_eq!(&bytes[..4], &[51, 0, 0, 0]);
    }
    assert_eq!(&bytes[4..], json);
}

#[test]
fn correct_clients_deliver_the_file_and_the_mistakes_lose_what_they_say() {
    let cases =
        run(&["client=send-ignored,sendall,sendfile", "receiver=exact,one-recv", "file_size=1048576"]);
    assert_eq!(cases.len(), 6);
    for case in &cases {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?} {:?}", case.id, case.checks, case.error);
        let (client, receiver) =
            (case.params["client"].as_str().unwrap(), case.params["receiver"].as_str().unwrap());
        let (size, got) = (metric(case, "file_size"), metric(case, "bytes_received"));
        assert_eq!(metric(case, "bytes_lost"), size - got);
        match (client, receiver) {
            ("send-ignored", "exact") => {
                assert_eq!(metric(case, "bytes_not_sent"), metric(case, "bytes_lost"), "{}", case.id);
            }
            (_, "exact") => assert_eq!(metric(case, "digest_match"), 1.0, "{}", case.id),
            // One recv() of 1 MiB returns at most the 128 KiB a receive buffer starts with.
            (_, _) => assert!(got <= 262_144.0, "{}: {got}", case.id),
        }
    }
}

#[test]
fn a_file_of_one_byte_arrives_whole_with_every_client() {
    for case in run(&["file_size=1", "client=send-ignored,sendall,sendfile"]) {
        assert_eq!(case.status, CaseStatus::Passed, "{}: {:#?}", case.id, case.checks);
        assert_eq!(metric(&case, "digest_match"), 1.0, "{}", case.id);
    }
}
