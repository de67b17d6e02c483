//! The disk tier: plain `.npy` files with verified metadata sidecars.
