//! The runtime's `--log FILE`, as runc writes it: one line per entry, logrus's text format
//! (`time="…" level=error msg="…"`) or JSON (`{"level":"error","msg":"…","time":"…"}`), which is
//! where podman, conmon and containerd's shim read a failed operation's reason.

use super::cli::LogFormat;
use std::io::Write;
use std::path::PathBuf;

pub struct Log {
    file: Option<PathBuf>,
    format: LogFormat,
    debug: bool,
}

impl Log {
    pub fn new(file: Option<PathBuf>, format: LogFormat, debug: bool) -> Log {
        Log {
            file,
            format,
            debug,
        }
    }

    pub fn error(&self, msg: &str) {
        self.write("error", msg);
    }

    /// Only with --debug.
    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    fn write(&self, level: &str, msg: &str) {
        let Some(path) = &self.file else {
            return;
        };
        let time = isola_container::state::now_rfc3339();
        let line = match self.format {
            LogFormat::Json => {
                serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
            }
            LogFormat::Text => format!(
                "time={} level={level} msg={}",
                serde_json::Value::from(time),
                serde_json::Value::from(msg)
            ),
        };
        // Best effort, as runc's: a log that cannot be written does not fail the operation.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
