"""Visitors and couriers (访客、快递外卖): gate posters, the phone form, signed passes (M7)."""
