//! What the queue runner cleans: temporary files, a `-D` without its `-H`,
//! and an `-H` without its `-D` (the rest of a removal a power cut half
//! undid); never a whole message.

use std::time::Duration;

use spool::{Envelope, Queue, QueueOptions};

#[test]
fn lone_files_are_garbage_whole_messages_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path(), QueueOptions::default()).unwrap();
    let env = Envelope::new("a@example.org", &["b@example.org"]);
    let keep = q.enter(&env, &[], b"kept\n").unwrap();
    let half = q.enter(&env, &[], b"half removed\n").unwrap();
    let layout = q.locate(&half).unwrap();
    std::fs::remove_file(layout.data(&half)).unwrap();

    // Too young: nothing goes.
    assert!(
        q.clean_garbage(Duration::from_secs(3600))
            .unwrap()
            .is_empty()
    );
    let removed = q.clean_garbage(Duration::ZERO).unwrap();
    assert_eq!(removed, vec![layout.header(&half)]);
    assert_eq!(q.ids().unwrap(), vec![keep]);
    assert!(q.begin_delivery(&keep).is_ok());
}
