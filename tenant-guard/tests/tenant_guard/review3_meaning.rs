//! Outside review, third round: the emitted SQL means what the guard checked
//! (class: "the guard's emitted SQL did not mean what it checked").
