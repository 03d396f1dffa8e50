//! Reading a container's log file, optionally following it like `tail -f`.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use super::LogStream;

const CHUNK: usize = 64 * 1024;
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Streams `path` from the start. With `follow`, keeps reading new output while `running`
/// says the writer is alive, and ends once it is not and the file is drained.
pub(crate) async fn read_log(
    path: &Path,
    follow: bool,
    running: Arc<dyn Fn() -> bool + Send + Sync>,
) -> io::Result<LogStream> {
    let file = tokio::fs::File::open(path).await?;
    struct State {
        file: tokio::fs::File,
        follow: bool,
        running: Arc<dyn Fn() -> bool + Send + Sync>,
        // Set once the writer was seen stopped: one more empty read then ends the stream,
        // which catches output written between the last read and the check.
        writer_gone: bool,
    }
    let state = State {
        file,
        follow,
        running,
        writer_gone: false,
    };
    let stream = futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            let mut buf = BytesMut::with_capacity(CHUNK);
            match state.file.read_buf(&mut buf).await {
                Ok(0) => {
                    if !state.follow || state.writer_gone {
                        return None;
                    }
                    if !(state.running)() {
                        state.writer_gone = true;
                        continue;
                    }
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
                Ok(_) => return Some((Ok::<Bytes, io::Error>(buf.freeze()), Some(state))),
                Err(e) => return Some((Err(e), None)),
            }
        }
    });
    Ok(Box::pin(stream))
}
