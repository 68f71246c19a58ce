//! local stack
