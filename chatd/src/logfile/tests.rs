//! Unit tests of the rotated log file.

use std::io::Write;

use super::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn rotates_by_size_and_keeps_at_most_keep_files() {
    let dir = tempdir();
    let path = dir.path().join("logs").join("chatd.log");
    let mut file = RotatingFile::with_limits(&path, 100, 3).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..20 {
        let line = format!("line {i:02} {}\n", "x".repeat(30));
        file.write_all(line.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    file.flush().unwrap_or_else(|e| panic!("{e}"));
    let live = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(live.len() <= 100, "{}", live.len());
    assert!(live.ends_with(&format!("line 19 {}\n", "x".repeat(30))));
    let one =
        std::fs::read_to_string(RotatingFile::rotated(&path, 1)).unwrap_or_else(|e| panic!("{e}"));
    assert!(one.contains("line 17") || one.contains("line 16"), "{one}");
    assert!(RotatingFile::rotated(&path, 2).exists());
    assert!(!RotatingFile::rotated(&path, 3).exists());
    let names = std::fs::read_dir(path.parent().unwrap_or(dir.path()))
        .unwrap_or_else(|e| panic!("{e}"))
        .count();
    assert_eq!(names, 3);
}

#[test]
fn appends_to_an_existing_file_and_counts_it() {
    let dir = tempdir();
    let path = dir.path().join("chatd.log");
    std::fs::write(&path, "x".repeat(90)).unwrap_or_else(|e| panic!("{e}"));
    let mut file = RotatingFile::with_limits(&path, 100, 2).unwrap_or_else(|e| panic!("{e}"));
    file.write_all(b"0123456789ABCDEF\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}")),
        "0123456789ABCDEF\n"
    );
    assert_eq!(
        std::fs::read_to_string(RotatingFile::rotated(&path, 1))
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        90
    );
}

#[cfg(unix)]
#[test]
fn the_file_is_the_users_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let path = dir.path().join("chatd.log");
    std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("{e}"));
    let _file = RotatingFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mode = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
