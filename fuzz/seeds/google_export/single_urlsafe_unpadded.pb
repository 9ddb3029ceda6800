
@
single-totp-secret!!Example:alice@example.comExample (0(ïý¶õýÿÿÿÿ