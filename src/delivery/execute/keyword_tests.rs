//! Keywords and edited content through `execute`.

use super::*;

/// Keywords reach the file name; past a folder's 26 letters they are dropped with a
/// note, and the copy is still stored.
#[test]
fn keywords_stored_and_27th_noted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let md = Maildir::new(tmp.path().join("Maildir"));
    std::fs::create_dir_all(md.root()).expect("mkdir");
    let full: String = (0..26).map(|i| format!("{i} k{i}\n")).collect();
    std::fs::write(md.root().join("dovecot-keywords"), full).expect("write");
    let plan = Plan {
        actions: vec![Action::Store {
            folder: Folder::inbox(),
            flags: SystemFlags::default(),
            keywords: vec!["k1".into(), "Overflow".into()],
            create: false,
            edited: Some(std::sync::Arc::from(&b"X-Edited: 1\r\n\r\nedited\r\n"[..])),
        }],
        notes: vec![],
        remember: vec![],
        claims: vec![],
        suppressed: vec![],
    };
    let (outcome, notes) = execute(&plan, &md, b"Delivered-To: a@b\r\n", b"original\r\n");
    let RcptOutcome::Delivered { stored } = outcome else {
        panic!("stored");
    };
    let name = stored[0].path.to_string_lossy().into_owned();
    assert!(name.ends_with(":2,b"), "{name}");
    assert!(
        notes.iter().any(|n| n.contains("Overflow not set")),
        "{notes:?}"
    );
    let content = std::fs::read(&stored[0].path).expect("read");
    assert_eq!(
        content, b"Delivered-To: a@b\r\nX-Edited: 1\r\n\r\nedited\r\n",
        "trace headers, then the edited message"
    );
}
