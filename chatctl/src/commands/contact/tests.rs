//! The yes/no answer to the safety-number question.

use super::is_yes;

#[test]
fn only_y_or_yes_confirms() {
    for yes in ["y", "Y\n", " yes \n", "YES"] {
        assert!(is_yes(yes), "{yes:?}");
    }
    for no in ["", "\n", "n", "no", "yep", "y es"] {
        assert!(!is_yes(no), "{no:?}");
    }
}
