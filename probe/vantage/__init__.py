"""Where the probe sits, and keeping it out of the records: `facts` (the network, the
resolver, VPN detection, the round's `x_vantage`), `publicip` (the public address from
STUN and HTTPS echo, to scrub it), `geoip` (IP to ASN and country) and `scrub` (the
volunteer's address out of every record, in every spelling)."""
