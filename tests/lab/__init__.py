"""The censorship lab: network namespaces with a censor in the middle (see docs/lab.md).

client ──veth── censor (router: nftables + middleboxes) ──veth── net (the "internet": servers)
                                                                  └─veth── ctrl (control vantage)

Every address is in 198.18.0.0/15 (plus the national blockpage host 10.10.34.36 inside `net`);
nothing routes out of the lab.
"""
