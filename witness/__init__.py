"""`safehold witness`: an independent checkpoint witness (C2SP tlog-witness, tlog-cosignature).

Someone other than the server operator runs it. It imports crypto/ and schemas/ only, so it
shares no code path with the server it watches beyond the byte formats.
"""
