"""Pure, vectorized indicator functions: numpy in, numbers or arrays out."""
