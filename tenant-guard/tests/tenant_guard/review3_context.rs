//! Outside review, third round: no SQL inside a tenant transaction moves the
//! tenant context RLS reads (class: "RLS read a tenant the same SQL could change").
