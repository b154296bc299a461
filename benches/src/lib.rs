//! Shared helpers of the benchmarks: criterion micro-benchmarks of the
//! offload engine and the end-to-end relay benchmark, each run side by side
//! with tun-rs on the same inputs. The benchmarks arrive with their issue.

#![forbid(unsafe_code)]
