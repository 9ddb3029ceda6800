"""Test support shared by every Python test of totpd.

- `server`: start and stop a live `totpd serve`, run `totpd keys create`.
- `otp`: the one independent OTP oracle (hmac, with pyotp as a second opinion).
- `api`: a keep-alive HTTP client for the API.
- `skips`: loud skips (counted by scripts/test; a failure under CI).
"""
