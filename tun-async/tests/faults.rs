//! An interface deleted under waiting tasks: every waiter (single-packet
//! receive, batched receive, a readiness wait, a packet stream) wakes with
//! an error of kind `DeviceGone` instead of sleeping forever.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tun_async::{AsyncQueue, PacketStream};
use tun_device::{ErrorKind, RecvState};

#[test]
fn deleting_the_interface_wakes_waiting_tasks() {
    let Some(ns) = private_ns() else { return };
    let rt = runtime();
    for offload in [false, true] {
        let dev = single(&ns, &format!("gone{}", offload as u8), offload, 1);
        let iface = dev.interface().clone();
        let _g = rt.enter();
        let q = Arc::new(AsyncQueue::new(dev.into_queues().remove(0)).unwrap());
        // The kernel may send a few packets of its own (IPv6 router
        // solicitations) before the interface goes: read past them.
        let single = {
            let q = q.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    if let Err(e) = q.recv(&mut buf).await {
                        return e;
                    }
                }
            })
        };
        let batch = {
            let q = q.clone();
            tokio::spawn(async move {
                let mut st = RecvState::new();
                let mut bufs = vec![vec![0u8; 2048]; 8];
                let mut sizes = vec![0; 8];
                loop {
                    if let Err(e) = q.recv_batch(&mut st, &mut bufs, &mut sizes, 0).await {
                        return e;
                    }
                }
            })
        };
        let stream = {
            let mut s = PacketStream::new(q.clone(), 65536);
            tokio::spawn(async move {
                use futures_core::Stream;
                loop {
                    let item =
                        std::future::poll_fn(|cx| std::pin::Pin::new(&mut s).poll_next(cx)).await;
                    match item {
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            // The stream ends after a device-gone error.
                            let next =
                                std::future::poll_fn(|cx| std::pin::Pin::new(&mut s).poll_next(cx))
                                    .await;
                            assert!(next.is_none(), "stream goes on after the device went");
                            return e;
                        }
                        None => panic!("stream ended without an error"),
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!single.is_finished() && !batch.is_finished() && !stream.is_finished());
        iface.delete().unwrap();
        for (what, task) in [("recv", single), ("recv_batch", batch), ("stream", stream)] {
            let err = rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await })
                .unwrap_or_else(|_| panic!("{what}: still waiting 5 s after the delete"))
                .unwrap();
            assert_eq!(err.kind(), ErrorKind::DeviceGone, "{what}: {err}");
        }
        // A readiness wait after the fact returns at once (EPOLLERR), and
        // the next call reports the device gone.
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), q.readable())
                .await
                .expect("readable() waits on a gone device")
                .unwrap();
            let err = q.send(&[0x45; 20]).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::DeviceGone, "{err}");
        });
    }
}
