//! The local JSON-RPC server (being written).
