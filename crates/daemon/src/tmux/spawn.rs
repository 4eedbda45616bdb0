//! Starting and stopping agent sessions in tmux windows.
