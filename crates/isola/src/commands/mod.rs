pub mod bundle;
pub mod containers;
pub mod images;
pub mod run;
