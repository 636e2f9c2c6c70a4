"""Dose-limiting toxicities, one direction of imports:

events (fatal AE, fingerprint) <- decisions (committee decisions applied in SQL, recording them)
<- evaluability (who counts) <- screening (protocol rules; derives dlt_candidates + dlt_evaluability)
<- stopping (statistics and the stopping_rule_status derivation).

The live state a committee sees (decisions applied now) is :func:`safety.review.dlt_status.dlt_status`.
"""
