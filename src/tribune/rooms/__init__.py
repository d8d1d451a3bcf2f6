"""The domain: a Space, who is in it, and what each of them may do. No I/O here."""
