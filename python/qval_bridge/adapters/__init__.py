"""Adapters shipped with qval: gymnasium FrozenLake (``gym_frozenlake``), gymnasium's Taxi and
CliffWalking (``gym_toytext``) and TextWorld text adventures (``textworld_games``)."""
