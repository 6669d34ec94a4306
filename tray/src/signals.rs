//! Stopping on a signal: SIGTERM (a session ending, `systemctl --user stop`), SIGINT (Ctrl-C)
//! and SIGHUP (the terminal it ran in closed) become [`Input::Stop`] for the main loop, which
//! closes the notifications it has open and takes the icon off the panel before it exits 0.
//!
//! The signals are caught by tokio (a one-thread runtime on a thread of its own), which needs
//! no `unsafe` here; a second signal while chat-tray is stopping is caught too, and ignored.

use std::sync::mpsc::Sender;

use crate::Input;

/// Starts catching the signals; each one caught is sent to `inputs`. A failure to set up is
/// logged: chat-tray then runs on and dies of the signal, as it did before.
pub fn catch(inputs: Sender<Input>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(error = %e, "cannot catch signals");
            return;
        }
    };
    // Registered here, before the thread starts, so a signal that arrives right after
    // `catch` returns is already caught.
    let listeners = match runtime.block_on(async { listen() }) {
        Ok(listeners) => listeners,
        Err(e) => {
            tracing::warn!(error = %e, "cannot catch signals");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || runtime.block_on(forward(listeners, inputs)));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot catch signals");
    }
}

#[cfg(unix)]
type Listeners = Vec<(&'static str, tokio::signal::unix::Signal)>;
#[cfg(not(unix))]
type Listeners = ();

#[cfg(unix)]
fn listen() -> std::io::Result<Listeners> {
    use tokio::signal::unix::{SignalKind, signal};
    Ok(vec![
        ("SIGTERM", signal(SignalKind::terminate())?),
        ("SIGINT", signal(SignalKind::interrupt())?),
        ("SIGHUP", signal(SignalKind::hangup())?),
    ])
}

#[cfg(not(unix))]
fn listen() -> std::io::Result<Listeners> {
    Ok(())
}

#[cfg(unix)]
async fn forward(mut listeners: Listeners, inputs: Sender<Input>) {
    loop {
        let caught = first_signal(&mut listeners).await;
        let Some(name) = caught else {
            return;
        };
        tracing::info!(signal = name, "stopping");
        if inputs.send(Input::Stop(name)).is_err() {
            return;
        }
    }
}

/// The name of the first of `listeners` to fire (`None` once they cannot fire any more).
#[cfg(unix)]
async fn first_signal(listeners: &mut Listeners) -> Option<&'static str> {
    std::future::poll_fn(|cx| {
        let mut open = false;
        for (name, signal) in listeners.iter_mut() {
            match signal.poll_recv(cx) {
                std::task::Poll::Ready(Some(())) => return std::task::Poll::Ready(Some(*name)),
                std::task::Poll::Ready(None) => {}
                std::task::Poll::Pending => open = true,
            }
        }
        if open {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(None)
        }
    })
    .await
}

#[cfg(not(unix))]
async fn forward((): Listeners, inputs: Sender<Input>) {
    while tokio::signal::ctrl_c().await.is_ok() {
        tracing::info!(signal = "Ctrl-C", "stopping");
        if inputs.send(Input::Stop("Ctrl-C")).is_err() {
            return;
        }
    }
}
