"""What a committee reads beyond CRS and ICANS: infections, deaths and non-relapse mortality, cumulative incidence,
immune reconstitution, on-target off-tumour events, cellular kinetics, TLS, secondary malignancies, dose given and
response. Each module declares one ``DERIVATION``; :mod:`safety.derive.outcomes.survival` holds the estimators."""
