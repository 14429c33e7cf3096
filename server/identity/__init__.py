"""Who a caller is: accounts, devices and their signed roster, login, tokens and rate limits."""
