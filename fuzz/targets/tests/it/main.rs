//! Integration tests of the fuzz targets: the committed corpora replay cleanly, and the keyed
//! targets reach past authentication.

mod reach;
mod replay;
