//! The two macros that turn the spec's tables into code: `arguments!` declares a method's struct
//! with its fields in wire order, `class!` a class's enum with the method ids. Writing each
//! method's encode and decode by hand would repeat the same field list three times (struct,
//! encode, decode) for 64 methods; the macros keep one list, in the spec's order.

/// Declares method structs whose fields are read and written in declaration order, each field
/// by its type's [`crate::wire::Argument`] domain (`bool` is a packed bit).
macro_rules! arguments {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $kind:ty ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $kind, )*
        }

        impl $name {
            // Methods without arguments leave the writer and reader unused.
            #[allow(unused_variables)]
            pub(crate) fn encode_arguments(&self, writer: &mut $crate::wire::Writer<'_>) {
                $( $crate::wire::Argument::encode(&self.$field, writer); )*
            }

            #[allow(unused_variables)]
            pub(crate) fn decode_arguments(
                reader: &mut $crate::wire::Reader,
            ) -> Result<Self, $crate::error::ArgumentError> {
                Ok($name {
                    $( $field: $crate::wire::Argument::decode(reader).map_err(|source| {
                        $crate::error::ArgumentError { field: stringify!($field), source }
                    })?, )*
                })
            }
        }

        arguments_strategy!($name { $($field: $kind),* });
    )*};
}

/// Declares a class's `Method` enum (one variant per method struct of the same name), its
/// method ids and names, and `From` each struct into the crate's [`crate::Method`].
macro_rules! class {
    (
        $(#[$meta:meta])*
        $class:ident = $class_id:literal, $class_name:literal {
            $( $variant:ident = $method_id:literal, $method_name:literal; )*
        }
    ) => {
        /// The class id on the wire.
        pub const CLASS_ID: u16 = $class_id;

        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum Method {
            $(
                #[doc = concat!("`", $class_name, ".", $method_name, "`")]
                $variant($variant),
            )*
        }

        impl Method {
            /// The method id on the wire.
            pub fn method_id(&self) -> u16 {
                match self {
                    $( Method::$variant(_) => $method_id, )*
                }
            }

            /// The spec's name, `class.method`.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Method::$variant(_) => concat!($class_name, ".", $method_name), )*
                }
            }

            pub(crate) fn encode_arguments(&self, writer: &mut $crate::wire::Writer<'_>) {
                match self {
                    $( Method::$variant(method) => method.encode_arguments(writer), )*
                }
            }

            pub(crate) fn decode_arguments(
                method_id: u16,
                reader: &mut $crate::wire::Reader,
            ) -> Result<Self, $crate::error::CodecError> {
                match method_id {
                    $( $method_id => $variant::decode_arguments(reader)
                        .map(Method::$variant)
                        .map_err(|error| error.in_method(concat!($class_name, ".", $method_name))), )*
                    _ => Err($crate::error::CodecError::MethodUnknown {
                        class_id: $class_id,
                        method_id,
                    }),
                }
            }
        }

        impl From<Method> for $crate::method::Method {
            fn from(method: Method) -> Self {
                $crate::method::Method::$class(method)
            }
        }

        $(
            impl From<$variant> for $crate::method::Method {
                fn from(method: $variant) -> Self {
                    $crate::method::Method::$class(Method::$variant(method))
                }
            }
        )*

        class_strategy!(Method { $($variant),* });
    };
}

/// Outside tests the macros generate no strategies.
#[cfg(not(test))]
macro_rules! arguments_strategy {
    ($($tokens:tt)*) => {};
}

#[cfg(not(test))]
macro_rules! class_strategy {
    ($($tokens:tt)*) => {};
}

#[cfg(test)]
macro_rules! arguments_strategy {
    ($name:ident { $($field:ident : $kind:ty),* }) => {
        impl proptest::arbitrary::Arbitrary for $name {
            type Parameters = ();
            type Strategy = proptest::strategy::BoxedStrategy<Self>;

            fn arbitrary_with(_: ()) -> Self::Strategy {
                use proptest::strategy::Strategy;
                // `Just(())` first: a tuple of one strategy per field, even for no fields.
                (proptest::strategy::Just(()), $( proptest::arbitrary::any::<$kind>(), )*)
                    .prop_map(|((), $($field,)*)| $name { $($field,)* })
                    .boxed()
            }
        }
    };
}

#[cfg(test)]
macro_rules! class_strategy {
    (Method { $($variant:ident),* }) => {
        impl Method {
            /// Any method of the class, each equally likely.
            pub(crate) fn strategy() -> proptest::strategy::BoxedStrategy<Method> {
                use proptest::strategy::Strategy;
                proptest::strategy::Union::new(vec![
                    $( proptest::arbitrary::any::<$variant>().prop_map(Method::$variant).boxed(), )*
                ])
                .boxed()
            }
        }
    };
}
