"""Adapters shipped with qval: gymnasium FrozenLake (``gym_frozenlake``) and gymnasium's Taxi and
CliffWalking (``gym_toytext``)."""
