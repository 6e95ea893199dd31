//! The bot's chat flag (`--say`) and how a received message is printed (one JSON line,
//! `{"event":"message","from":…,"text":…}`); see docs/cli.md#bot.

use serde_json::json;
use tokio::sync::mpsc;
use usermedia::client::{Chat, ChatMessage};

use crate::exit::CliError;

/// `usermedia bot`'s chat flags.
#[derive(clap::Args, Default, Clone)]
pub struct ChatArgs {
    /// Say TEXT on the `chat` data channel to everyone in the call: to those there when
    /// the bot joins and to each one who joins later, once each as their channel opens
    /// (at most 4096 bytes).
    #[arg(long, value_name = "TEXT")]
    pub say: Option<String>,
}

impl ChatArgs {
    /// The chat these flags ask for; bad input if the text is too long.
    pub fn chat(&self) -> Result<(Chat, mpsc::Receiver<ChatMessage>), CliError> {
        Chat::new(self.say.clone()).map_err(|e| CliError::bad_input(format!("--say: {e}")))
    }
}

/// Prints a received message as its JSON line.
pub fn print_message(message: &ChatMessage) {
    crate::print_json(&json!({
        "event": "message",
        "from": message.from,
        "text": message.text,
    }));
}
