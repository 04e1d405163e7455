-- +goose Up
-- Mail waits here until the background sender has handed it to the SMTP
-- server. A row is written in the same transaction as the event that
-- causes the mail, so a mail is sent if and only if its event happened.
-- Senders (any instance) claim due rows with FOR UPDATE SKIP LOCKED and
-- lease them (next_attempt_at moves past the send's time limit), so two
-- instances never send one message. The bodies, which hold links with
-- tokens, are cleared once the message is sent or given up on; the row
-- stays as the record of what was sent to whom.
CREATE TABLE mail_outbox (
    id              bigserial PRIMARY KEY,
    kind            text        NOT NULL,
    to_address      text        NOT NULL,
    to_name         text        NOT NULL DEFAULT '',
    subject         text        NOT NULL,
    text_body       text        NOT NULL,
    html_body       text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    failed_at       timestamptz,
    last_error      text        NOT NULL DEFAULT ''
);
-- The sender's claim and the outbox's age read only unsent rows.
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;

-- "Forgot password" requests. The request path does the same work whether
-- or not the address has an account: it writes one row here. The mail
-- worker then looks the address up and, for an enabled account, makes the
-- reset token and queues the mail, so neither the answer nor its timing
-- says who has an account.
CREATE TABLE password_reset_requests (
    id           bigserial PRIMARY KEY,
    email        text        NOT NULL,
    ip           text        NOT NULL DEFAULT '',
    user_agent   text        NOT NULL DEFAULT '',
    requested_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE password_reset_requests;
DROP TABLE mail_outbox;
