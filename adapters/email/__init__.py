"""The email channel: its pure core (MIME parsing into `InboundMessage`, HTML reduced to
text, auto-reply and bounce recognition, thread tokens and `Re:` subjects, composing
replies with correct Message-ID / In-Reply-To / References) and the thin shells around it
(attachments kept on disk; the IMAP/SMTP transport).
"""
