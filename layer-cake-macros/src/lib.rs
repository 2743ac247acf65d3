//! Derive macros for layer-cake.
//!
//! Use them through the `layer_cake` crate (`use layer_cake::Message;`); the
//! expansions name `::layer_cake` paths only.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, LitStr};

/// Derives `layer_cake::Message` for a struct or an enum and registers it, so
/// it can be decoded by its signature in any process that links it.
///
/// `#[message(control)]` puts the type on the control lane of mailboxes
/// (never refused, read first) — for lifecycle and connection events.
///
/// The signature is the type's name (`Xy`); `#[message(name = "...")]` sets
/// another one. The type must also derive serde's `Serialize` and
/// `Deserialize`. Generic types are refused: a signature names one concrete
/// type (register a concrete instance with `layer_cake::register!`).
///
/// ```ignore
/// #[derive(Serialize, Deserialize, Message)]
/// #[message(name = "demo.Xy")]
/// struct Xy { x: i64, y: i64 }
/// ```
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let ast = syn::parse_macro_input!(input as DeriveInput);
    match expand(&ast) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(ast: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    if let Data::Union(u) = &ast.data {
        return Err(syn::Error::new(
            u.union_token.span(),
            "#[derive(Message)] supports structs and enums, not unions",
        ));
    }
    if !ast.generics.params.is_empty() {
        return Err(syn::Error::new(
            ast.generics.span(),
            "#[derive(Message)] does not support generic types: a message signature names one concrete type; \
             implement `layer_cake::Message` by hand or send a concrete non-generic type",
        ));
    }
    let name = &ast.ident;
    let mut signature = LitStr::new(&name.to_string(), Span::call_site());
    let mut control = false;
    for attr in ast.attrs.iter().filter(|a| a.path().is_ident("message")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let value: LitStr = meta.value()?.parse()?;
                if value.value().is_empty() || value.value().contains(['<', '>', ',', ' ']) {
                    return Err(meta.error(
                        "a message name must be non-empty and contain no `<`, `>`, `,` or spaces",
                    ));
                }
                signature = value;
                Ok(())
            } else if meta.path.is_ident("control") {
                control = true;
                Ok(())
            } else {
                Err(meta
                    .error("unknown #[message] attribute; expected `name = \"...\"` or `control`"))
            }
        })?;
    }
    Ok(quote! {
        impl ::layer_cake::Message for #name {
            const CONTROL: bool = #control;
            fn write_signature(out: &mut ::std::string::String) {
                out.push_str(#signature);
            }
        }
        ::layer_cake::__private::inventory::submit! {
            ::layer_cake::message::registry::Registration::of::<#name>()
        }
    })
}
